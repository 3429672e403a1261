"""End-to-end fixtures: a real OpenSSH sshd target and a real `gatehouse serve` on 127.0.0.1,
the Python port of Tests/BastionTests/BastionFixture.swift and scripts/demo.sh.

The gatehouse executable comes from `GATEHOUSE_BIN` (scripts/python-tests.sh sets it). Without
it the end-to-end tests FAIL with a message saying so: they are never skipped silently.
Every process started here is stopped by its pid; every wait polls against a deadline."""
from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import pytest

REPO = Path(__file__).resolve().parents[3]
PROVIDER = REPO / "scripts" / "oidc" / "glewlwyd_provider.py"


# ---------------------------------------------------------------- helpers

def gatehouse_bin() -> str:
    path = os.environ.get("GATEHOUSE_BIN")
    if not path:
        pytest.fail("GATEHOUSE_BIN is not set: build gatehouse (`swift build`) and run "
                    "scripts/python-tests.sh PATH-TO-gatehouse, or export GATEHOUSE_BIN", pytrace=False)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"GATEHOUSE_BIN={path} is not an executable file", pytrace=False)
    return path


def require_issuance(gh: str) -> None:
    """Fails (never skips) when the binary has no OIDC issuance service: it comes with
    `gatehouse login`; a binary without it would silently ignore `issuance:`."""
    r = subprocess.run([gh, "--help"], capture_output=True, text=True, timeout=30)
    if not any(ln.split()[:1] == ["login"] for ln in r.stdout.splitlines()):
        pytest.fail(f"{gh} has no OIDC issuance service (no `gatehouse login` subcommand): this test REQUIRES "
                    "the OIDC issuance service (POST /v1/certificates)", pytrace=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred: Callable[[], object], timeout: float, what: str, proc: Optional[subprocess.Popen] = None,
             log: Optional[Path] = None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise AssertionError(f"{what}: the process exited with status {proc.returncode}\n{tail}")
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    import urllib.request

    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def stop_pid(proc: subprocess.Popen, grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def run_checked(argv: list[str], **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def audit_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


# ---------------------------------------------------------------- the bastion

SCOPES_YAML = """\
scopes:
  ops:
    targets: [web-01]
    rights: [exec]
    commands:
      - "uname -sr"
      - "id -un"
      - "hostname"
      - "true"
      - "echo {{words...}}"
      - "cat {{file: path under {d}/www}}"
      - "bash -s"
  web-read:
    targets: [web-01]
    rights: [exec]
    commands: ["uname -sr", "echo {{words...}}"]
  deploy:
    targets: [web-01]
    rights: [exec]
    commands: ["uname -sr"]
    review: ["touch {{path: path under {d}/www}}"]
    approvers: [sre, "local:*"]
  deploy-short:
    targets: [web-01]
    rights: [exec]
    review: ["mkdir {{path: path under {d}/www}}"]
    approvers: ["local:*"]
    approval_ttl: 2s
    approval_webhook: {{url: "http://127.0.0.1:9/dead-receiver", secret_file: "{d}/www/../dead-hook.secret"}}
  fleet:
    targets: [web-01, db-01]
    rights: [exec, shell]
    commands: ["uname -sr", "id -un", "hostname", "echo {{words...}}"]
"""


@dataclass
class Bastion:
    directory: Path
    gatehouse: str
    state: Path
    bastion_port: int
    target_port: int
    known_hosts: Path
    agent_key: Path
    login: str
    issuance_url: Optional[str] = None
    procs: list = field(default_factory=list)

    @property
    def audit_path(self) -> Path:
        return self.state / "audit.log"

    def audit(self) -> list[dict]:
        return audit_records(self.audit_path)

    def await_audit(self, pred: Callable[[dict], bool], timeout: float = 10.0) -> list[dict]:
        """All audit records matching `pred`, waiting (with a deadline) for at least one: the
        server writes a session's end after the client has gone."""
        return wait_for(lambda: [r for r in self.audit() if pred(r)], timeout, "an audit record")

    def issue(self, scopes: str = "ops", key_id: str = "agent:pytest", context: str = "task=pytest",
              key: Optional[Path] = None, ttl: str = "10m") -> Path:
        key = key or self.agent_key
        out = Path(f"{key}-cert.pub")
        run_checked([self.gatehouse, "cert", "issue", "--state", str(self.state), "--ca", "user",
                     "--public-key", f"{key}.pub", "--key-id", key_id, "--principal", "agent",
                     "--ttl", ttl, "--scopes", scopes, "--context", context, "-o", str(out)])
        return out

    def connection(self, key: Optional[Path] = None):
        from gatehouse_client.autogen import GatehouseConnection

        return GatehouseConnection("127.0.0.1", self.bastion_port, key or self.agent_key, known_hosts=self.known_hosts,
                                   timeout=60)


def start_bastion(tmp: Path, issuance: Optional[str] = None) -> Bastion:
    """`issuance`: the YAML of an `issuance:` section (`@PORT@` stands for its listen port)."""
    gh = gatehouse_bin()
    if issuance:
        require_issuance(gh)
    d = tmp
    state = d / "state"
    login = pwd.getpwuid(os.getuid()).pw_name
    (d / "www").mkdir()
    (d / "www" / "index.html").write_text("hello from web-01\n")
    (d / "dead-hook.secret").write_text("a secret for a receiver that is not there\n")
    run_checked([gh, "ca", "init", "--state", str(state)])
    run_checked([gh, "ca", "export", "target", "--state", str(state), "-o", str(d / "target_ca.pub")])
    run_checked(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "target_host_key")])
    target_port, bastion_port = free_port(), free_port()
    (d / "sshd_config").write_text(f"""\
ListenAddress 127.0.0.1:{target_port}
HostKey {d}/target_host_key
PidFile {d}/sshd.pid
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile none
TrustedUserCAKeys {d}/target_ca.pub
LogLevel VERBOSE
""")
    os.makedirs("/run/sshd", exist_ok=True)
    b = Bastion(d, gh, state, bastion_port, target_port, d / "known_hosts", d / "agent", login)
    sshd_log = d / "sshd.log"
    sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", str(d / "sshd_config"), "-E", str(sshd_log)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    b.procs.append(sshd)
    try:
        wait_for(lambda: port_open(target_port), 20, "the target sshd", sshd, sshd_log)
        host_key = " ".join((d / "target_host_key.pub").read_text().split()[:2])
        yaml = f"""\
listen: ["127.0.0.1:{bastion_port}"]
state: {state}
host_keys: {d}/hostkeys
recordings: {d}/recordings
targets:
  web-01:
    address: 127.0.0.1
    port: {target_port}
    login: {login}
    host_key: "{host_key}"
  db-01:
    address: 127.0.0.1
    port: {target_port}
    login: {login}
    host_key: "{host_key}"
""" + SCOPES_YAML.format(d=d)
        if issuance:
            issuance_port = free_port()
            yaml += issuance.replace("@PORT@", str(issuance_port))
            b.issuance_url = f"http://127.0.0.1:{issuance_port}"
        (d / "gatehouse.yaml").write_text(yaml)
        serve_out, serve_err = d / "serve.out", d / "serve.err"
        with open(serve_out, "wb") as o, open(serve_err, "wb") as e:
            serve = subprocess.Popen([gh, "serve", "--config", str(d / "gatehouse.yaml")], stdin=subprocess.DEVNULL,
                                     stdout=o, stderr=e, cwd=str(d))
        b.procs.append(serve)
        # No probe connection: it would be audited as a refused handshake. serve prints
        # "listening on" once its sockets are bound.
        wait_for(lambda: "listening on" in serve_out.read_text(errors="replace"), 30,
                 "gatehouse serve", serve, serve_err)
        if b.issuance_url:
            wait_for(lambda: http_ok(b.issuance_url + "/healthz"), 30, "the issuance listener", serve, serve_err)
        lines = [ln[len("known_hosts: "):] for ln in serve_out.read_text().splitlines() if ln.startswith("known_hosts: ")]
        assert lines, f"gatehouse serve printed no known_hosts lines:\n{serve_out.read_text()}"
        b.known_hosts.write_text("\n".join(lines) + "\n")
        from gatehouse_client import ensure_key

        ensure_key(b.agent_key)
        return b
    except BaseException:
        stop_bastion(b)
        raise


def restart_serve(b: Bastion) -> None:
    """Stops `gatehouse serve` by its pid (SIGTERM) and starts it again on the same
    configuration and state directory, waiting until it listens."""
    serve = b.procs.pop()
    stop_pid(serve, grace=30)
    n = len(list(b.directory.glob("serve*.out")))
    out, err = b.directory / f"serve{n}.out", b.directory / f"serve{n}.err"
    with open(out, "wb") as o, open(err, "wb") as e:
        again = subprocess.Popen([b.gatehouse, "serve", "--config", str(b.directory / "gatehouse.yaml")], stdin=subprocess.DEVNULL,
                                 stdout=o, stderr=e, cwd=str(b.directory))
    b.procs.append(again)
    wait_for(lambda: "listening on" in out.read_text(errors="replace"), 30, "gatehouse serve (restarted)", again, err)
    if b.issuance_url:
        wait_for(lambda: http_ok(b.issuance_url + "/healthz"), 30, "the issuance listener (restarted)", again, err)


def stop_bastion(b: Bastion) -> None:
    for p in reversed(b.procs):
        stop_pid(p)


@pytest.fixture(scope="module")
def bastion(tmp_path_factory):
    b = start_bastion(tmp_path_factory.mktemp("gatehouse-e2e"))
    b.issue()
    yield b
    stop_bastion(b)


# ---------------------------------------------------------------- glewlwyd

#: What AutoGen's ReplayChatCompletionClient needs to know about the scripted "model".
MODEL_INFO = {"vision": False, "function_calling": True, "json_output": False, "family": "unknown",
              "structured_output": False, "multiple_system_messages": True}


def issuance_section(idp: "Provider", group_scopes: dict, extra: str = "") -> str:
    """The `issuance:` section for `start_bastion`: glewlwyd's ID tokens, key id
    `oidc:{preferred_username}`, and `group_scopes` mapping token groups to scopes (`@PORT@` is
    filled in by `start_bastion`). `extra` is appended as top-level YAML."""
    groups = "\n".join(f"      {group}: [{', '.join(scopes)}]" for group, scopes in group_scopes.items())
    return f"""\
issuance:
  listen: 127.0.0.1:@PORT@
  max_ttl: 1h
  default_ttl: 10m
  mapping:
    key_id: "oidc:{{preferred_username}}"
    principals: ["{{preferred_username}}"]
    groups_claim: groups
    group_scopes:
{groups}
  issuers:
    - issuer: {idp.info["issuer"]}
      audiences: [{idp.info["client_id"]}]
      token_type: id_token
      algorithms: [RS256]
""" + extra

@dataclass
class Provider:
    info: dict
    directory: Path

    def token(self, user: str, kind: str = "id") -> str:
        r = run_checked(["python3", str(PROVIDER), "token", "--dir", str(self.directory), "--user", user, "--kind", kind])
        return r.stdout.strip()


def start_provider(tmp: Path, users: list[str]) -> Provider:
    if not os.path.exists("/usr/bin/glewlwyd"):
        pytest.fail("Debian's glewlwyd is not installed: echo 'glewlwyd glewlwyd/config_type select No configuration' "
                    "| debconf-set-selections && apt-get install -y glewlwyd", pytrace=False)
    argv = ["python3", str(PROVIDER), "start", "--dir", str(tmp), "--port", str(free_port())]
    for u in users:
        argv += ["--user", u]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=90)
    if r.returncode != 0:
        raise AssertionError(f"glewlwyd_provider.py start failed:\n{r.stderr}")
    return Provider(json.loads(r.stdout), tmp)


def stop_provider(p: Provider) -> None:
    subprocess.run(["python3", str(PROVIDER), "stop", "--dir", str(p.directory)], capture_output=True, timeout=30)
