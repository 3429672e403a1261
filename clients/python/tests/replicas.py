"""Fixtures for Gatehouse replicas behind a TCP load balancer (issue 16), shared by
tests/test_replicas_e2e.py and bench/replicas/.

Every part is real and runs on 127.0.0.1 at free ports, started here and stopped by its pid:

- PostgreSQL 15 from Debian (`initdb` into a temporary directory; scram-sha-256 over TCP as
  production uses it). PostgreSQL refuses to run as root, so as root initdb and postgres run as
  the system user `gatehouse-pg` (created once with `useradd --system`) through `setpriv`,
  which execs in place: the pid we spawn *is* the postmaster's (as Tests/StateStoreTests'
  PostgresServer does).
- haproxy from Debian in TCP mode in front of the replicas' SSH ports and of their issuance
  ports, with HTTP health checks on each replica's `/healthz` (`check port` on the issuance
  listener) every 200 ms, so a dead or unready replica leaves the rotation within ~0.5 s.
- a real OpenSSH sshd as the target.
- `gatehouse serve` replicas ($GATEHOUSE_BIN): each its own state and recordings directory, all
  of them one host-keys directory (generated once here with ssh-keygen: the three file names
  Sources/Bastion/Server/HostKeys.swift reads) and one key-encryption-key file.
- an OIDC issuer whose signing key the test holds (see `Issuer`).
- moto's S3 server (`python3 -m moto.server`): the one stand-in. Gatehouse's S3 client speaks
  plain S3 (Signature Version 4); nothing moto-specific is used but creating the bucket.
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

PG_BIN = "/usr/lib/postgresql/15/bin"
PG_SYSTEM_USER = "gatehouse-pg"
HAPROXY = "/usr/sbin/haproxy"


class HarnessError(AssertionError):
    pass


# ---------------------------------------------------------------- small helpers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred: Callable[[], object], timeout: float, what: str, proc: Optional[subprocess.Popen] = None,
               log: Optional[Path] = None, interval: float = 0.05):
    """Polls `pred` until it returns something true, or fails at the deadline (with the log's tail)."""
    end = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise HarnessError(f"{what}: the process exited with status {proc.returncode}\n{tail(log)}")
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            raise HarnessError(f"timed out after {timeout}s waiting for {what}\n{tail(log)}")
        time.sleep(interval)


def tail(log: Optional[Path], n: int = 4000) -> str:
    if log is None or not Path(log).exists():
        return ""
    return Path(log).read_text(errors="replace")[-n:]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """(status, body) of GET http://127.0.0.1:port/path; (0, reason) when nothing answered."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    except OSError as e:
        return 0, str(e).encode()
    finally:
        c.close()


def stop_pid(proc: Optional[subprocess.Popen], sig: int = signal.SIGTERM, grace: float = 15.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def run(argv: list, check: bool = True, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise HarnessError(f"{' '.join(map(str, argv))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc (children not included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of `root` and every live descendant (PostgreSQL's backends are the
    postmaster's children; their time is counted while they live, and the postmaster's
    cutime/cstime holds the reaped ones')."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        hz = os.sysconf("SC_CLK_TCK")
        total += (int(f[11]) + int(f[12])) / hz
        if pid == root:
            total += (int(f[13]) + int(f[14])) / hz  # reaped children (backends that ended)
        stack.extend(children.get(pid, []))
    return total


# ---------------------------------------------------------------- PostgreSQL 15

class Postgres:
    """A real PostgreSQL 15 in a temporary directory, on 127.0.0.1 at a free port."""

    def __init__(self, settings: Optional[dict] = None):
        if not os.access(f"{PG_BIN}/initdb", os.X_OK):
            raise HarnessError(f"PostgreSQL 15 is not installed ({PG_BIN}/initdb): apt-get install postgresql-15 (make deps does)")
        self.account = self._account()
        self.directory = Path(tempfile.mkdtemp(prefix="gatehouse-pg-", dir="/tmp"))
        self.password = secrets.token_hex(16)
        self.user = "gatehouse"
        self.database = "gatehouse"
        self.port = free_port()
        self.settings = {"listen_addresses": "127.0.0.1", "max_connections": "300", "logging_collector": "off"}
        self.settings.update(settings or {})
        self.proc: Optional[subprocess.Popen] = None
        pwfile = self.directory / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.account:
            os.chown(self.directory, *self.account)
            os.chown(pwfile, *self.account)
        run(self._as_owner([f"{PG_BIN}/initdb", "-D", self.directory / "data", "-U", self.user, "--pwfile", pwfile,
                            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"]),
            env={"PATH": "/usr/bin:/bin", "LANG": "C"})
        # The password Gatehouse reads (password_file: one line), 0600, owned by whoever runs gatehouse.
        self.password_file = self.directory / "gatehouse-db-password"
        self.password_file.write_text(self.password + "\n")
        os.chmod(self.password_file, 0o600)
        self.start()
        self.psql("CREATE DATABASE gatehouse", database="postgres")

    @staticmethod
    def _account() -> Optional[tuple[int, int]]:
        if os.geteuid() != 0:
            return None
        try:
            pw = pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            r = subprocess.run(["/usr/sbin/useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                                "--shell", "/usr/sbin/nologin", "--user-group", PG_SYSTEM_USER], capture_output=True, text=True)
            try:
                pw = pwd.getpwnam(PG_SYSTEM_USER)
            except KeyError:
                raise HarnessError(f"useradd {PG_SYSTEM_USER} failed: {r.stderr}")
        return pw.pw_uid, pw.pw_gid

    def _as_owner(self, argv: list) -> list:
        if not self.account:
            return [str(a) for a in argv]
        uid, gid = self.account
        return ["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"] + [str(a) for a in argv]

    @property
    def log(self) -> Path:
        return self.directory / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{self.database}?sslmode=disable"

    def start(self, timeout: float = 60) -> None:
        """Starts the postmaster (again, on the same data directory and port)."""
        argv = [f"{PG_BIN}/postgres", "-D", self.directory / "data", "-k", self.directory, "-p", str(self.port)]
        for k, v in self.settings.items():
            argv += ["-c", f"{k}={v}"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self._as_owner(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env={"PATH": "/usr/bin:/bin", "LANG": "C"})
        wait_until(lambda: subprocess.run([f"{PG_BIN}/pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port), "-t", "2"]).returncode == 0,
                   timeout, "PostgreSQL to accept connections", self.proc, self.log)

    def stop(self) -> None:
        """Fast shutdown by the postmaster's pid (SIGINT: ends every session, checkpoints)."""
        stop_pid(self.proc, signal.SIGINT, grace=30)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def psql(self, sql: str, database: Optional[str] = None) -> str:
        r = run([f"{PG_BIN}/psql", "-h", self.directory, "-p", self.port, "-U", self.user, "-d", database or self.database,
                 "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql], env={"PATH": "/usr/bin:/bin"})
        return r.stdout.strip()


# ---------------------------------------------------------------- moto's S3 server (the stand-in)

class Moto:
    """moto's server mode, a stand-in for S3 on loopback (PyPI `moto[server]`). Signatures are
    not checked by moto unless its IAM mode is switched on; the bucket is created here with
    boto3, everything else is Gatehouse's own S3 client."""

    access_key = "AKIAGATEHOUSETEST"
    secret_key = "gatehouse-test-secret-key"
    region = "us-east-1"

    def __init__(self, directory: Path, bucket: str = "gatehouse-recordings"):
        self.port = free_port()
        self.bucket = bucket
        self.log = directory / "moto.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        wait_until(lambda: port_open(self.port), 60, "moto's S3 server", self.proc, self.log)
        self.client().create_bucket(Bucket=bucket)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)

    def keys(self, prefix: str = "") -> list[str]:
        out, token = [], None
        c = self.client()
        while True:
            kw = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                kw["ContinuationToken"] = token
            page = c.list_objects_v2(**kw)
            out += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return out
            token = page["NextContinuationToken"]

    def stop(self) -> None:
        stop_pid(self.proc)


# ---------------------------------------------------------------- an OIDC issuer whose key we hold

def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Issuer:
    """A minimal OIDC issuer: its discovery document and JWKS are static files served over
    HTTP on loopback by `python3 -m http.server` (Gatehouse fetches them as from any
    provider), and its Ed25519 signing key stays in this process, so a token is one
    signature (~50 us) rather than a round trip to glewlwyd (~20 ms). That makes 10,000 real,
    distinct tokens (each its own `jti`; the issuer is configured `jti_replay: true`) cheap,
    while Gatehouse still verifies every one end to end (issuer, `kid`, EdDSA signature,
    audience, times, `jti`). The glewlwyd path itself is covered by test_issuance_e2e.py."""

    def __init__(self, directory: Path):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        self.directory = directory / "oidc"
        (self.directory / ".well-known").mkdir(parents=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = Ed25519PrivateKey.generate()
        raw = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "kid": "replicas-1", "use": "sig", "alg": "EdDSA", "x": b64url(raw)}
        (self.directory / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
        (self.directory / ".well-known" / "openid-configuration").write_text(
            json.dumps({"issuer": self.url, "jwks_uri": self.url + "/jwks.json"}))
        self.log = directory / "oidc.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "http.server", str(self.port), "--bind", "127.0.0.1",
                                          "--directory", str(self.directory)], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        wait_until(lambda: http_get(self.port, "/jwks.json")[0] == 200, 30, "the OIDC issuer's JWKS", self.proc, self.log)
        self._header = b64url(json.dumps({"alg": "EdDSA", "kid": "replicas-1", "typ": "JWT"}).encode())

    def token(self, sub: str = "agent-1", groups: tuple = ("ops",), lifetime: int = 3600) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "aud": "gatehouse", "sub": sub, "preferred_username": sub, "groups": list(groups),
                  "iat": now, "exp": now + lifetime, "jti": uuid.uuid4().hex}
        signing_input = self._header + "." + b64url(json.dumps(claims, separators=(",", ":")).encode())
        return signing_input + "." + b64url(self.key.sign(signing_input.encode()))

    def stop(self) -> None:
        stop_pid(self.proc)


# ---------------------------------------------------------------- the target sshd

class Target:
    def __init__(self, directory: Path):
        self.directory = directory / "target"
        self.directory.mkdir()
        self.port = free_port()
        self.login = pwd.getpwuid(os.getuid()).pw_name
        self.trusted_ca = self.directory / "target_ca.pub"  # filled once the replicas publish their target CA
        self.trusted_ca.write_text("")
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.directory / "host_key"])
        self.host_key = " ".join((self.directory / "host_key.pub").read_text().split()[:2])
        (self.directory / "sshd_config").write_text(f"""\
ListenAddress 127.0.0.1:{self.port}
HostKey {self.directory}/host_key
PidFile {self.directory}/sshd.pid
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile none
TrustedUserCAKeys {self.trusted_ca}
MaxStartups 200:30:400
MaxSessions 100
# This machine's root .bashrc runs `pyenv init` (~0.2 s per session when sshd starts bash);
# SHLVL=1 skips it, as bench/bastion's target does: the target's start-up is not under test.
SetEnv SHLVL=1
LogLevel ERROR
""")
        os.makedirs("/run/sshd", exist_ok=True)
        self.log = self.directory / "sshd.log"
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", str(self.directory / "sshd_config"), "-E", str(self.log)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: port_open(self.port), 20, "the target sshd", self.proc, self.log)

    def trust(self, keys: set[str]) -> None:
        """sshd reads TrustedUserCAKeys at each authentication: no restart needed."""
        self.trusted_ca.write_text("".join(sorted(k + "\n" for k in keys)))

    def stop(self) -> None:
        stop_pid(self.proc)


# ---------------------------------------------------------------- replicas

def scopes_yaml(d: Path) -> str:
    return f"""\
scopes:
  ops:
    targets: [web-01]
    rights: [exec]
    commands:
      - "true"
      - "hostname"
      - "echo {{words...}}"
      - "bash -s"
"""


@dataclass
class Replica:
    index: int
    directory: Path
    ssh_port: int
    issuance_port: int
    config: Path
    gatehouse: str
    proc: Optional[subprocess.Popen] = None
    starts: int = 0
    #: With a recordings_store, the `recordings:` directory all replicas share (each spools
    #: into `<it>/<replica_id>/`, and a live replica finds a dead one's unfinished files there).
    shared_recordings: Optional[Path] = None

    @property
    def state(self) -> Path:
        return self.directory / "state"

    @property
    def replica_id(self) -> str:
        return f"replica{self.index}"

    @property
    def recordings_setting(self) -> Path:
        """The file's `recordings:`."""
        return self.shared_recordings or self.directory / "recordings"

    @property
    def recordings(self) -> Path:
        """Where this replica writes its recordings."""
        return self.shared_recordings / self.replica_id if self.shared_recordings else self.directory / "recordings"

    @property
    def out(self) -> Path:
        return self.directory / f"serve{self.starts}.out"

    @property
    def err(self) -> Path:
        return self.directory / f"serve{self.starts}.err"

    def start(self, host_keys: Path, wait: bool = True) -> None:
        self.starts += 1
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.proc = subprocess.Popen([self.gatehouse, "serve", "--config", str(self.config), "--state", str(self.state),
                                          "--host-keys", str(host_keys)], stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                                         cwd=str(self.directory))
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        # No probe SSH connection (it would be audited as a refused handshake): serve prints
        # "listening on" once its sockets are bound; then the issuance listener's /healthz.
        wait_until(lambda: "listening on" in self.out.read_text(errors="replace"), timeout,
                   f"replica {self.index} (gatehouse serve) to listen", self.proc, self.err)
        wait_until(lambda: http_get(self.issuance_port, "/healthz")[0] == 200, timeout,
                   f"replica {self.index}'s /healthz to answer 200", self.proc, self.err)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        stop_pid(self.proc, grace=30)

    def issuance(self, path: str) -> tuple[int, bytes]:
        return http_get(self.issuance_port, path)

    def recording_files(self) -> list[Path]:
        """This replica's local recordings (`<session>-ch<n>.ghrec`)."""
        return sorted(self.recordings.rglob("*.ghrec")) if self.recordings.exists() else []


class Haproxy:
    """haproxy in TCP mode: one frontend for SSH, one for issuance, round robin, each server
    checked with `GET /healthz` on its issuance port every 200 ms (down after 2 failures, up
    after 2 successes). `option redispatch` + `retries`: a connection refused by a dead server
    is retried on another one. Sessions already open are never cut by a check."""

    def __init__(self, directory: Path, replicas: list[Replica], ssh_port: int, issuance_port: int):
        self.ssh_port = ssh_port
        self.issuance_port = issuance_port
        self.stats_socket = directory / "haproxy.sock"
        self.config = directory / "haproxy.cfg"
        self.log = directory / "haproxy.log"

        def servers(kind: str) -> str:
            lines = []
            for r in replicas:
                port = r.ssh_port if kind == "ssh" else r.issuance_port
                lines.append(f"  server r{r.index} 127.0.0.1:{port} check port {r.issuance_port}")
            return "\n".join(lines)

        self.config.write_text(f"""\
global
  maxconn 4096
  stats socket {self.stats_socket} mode 600 level admin

defaults
  mode tcp
  timeout connect 2s
  timeout client 10m
  timeout server 10m
  timeout check 1s
  retries 3
  option redispatch
  default-server inter 200ms fastinter 100ms downinter 200ms fall 2 rise 2

frontend ssh
  bind 127.0.0.1:{self.ssh_port}
  default_backend replicas_ssh

backend replicas_ssh
  balance roundrobin
  option httpchk GET /healthz
  http-check expect status 200
{servers("ssh")}

frontend issuance
  bind 127.0.0.1:{self.issuance_port}
  default_backend replicas_issuance

backend replicas_issuance
  balance roundrobin
  option httpchk GET /healthz
  http-check expect status 200
{servers("issuance")}
""")
        run([HAPROXY, "-c", "-q", "-f", self.config])
        with open(self.log, "wb") as log:
            # -db: stay in the foreground, no master process: the pid we spawn is haproxy's.
            self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.config)], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        wait_until(lambda: port_open(self.ssh_port) and port_open(self.issuance_port), 20, "haproxy", self.proc, self.log)

    def server_states(self, backend: str = "replicas_ssh") -> dict[str, str]:
        """{"r1": "UP", ...} from haproxy's own stats socket."""
        with socket.socket(socket.AF_UNIX) as s:
            try:
                s.connect(str(self.stats_socket))
            except (FileNotFoundError, ConnectionRefusedError):
                # haproxy binds its listeners before it creates the stats socket: not ready yet.
                return {}
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        rows = data.decode().splitlines()
        header = rows[0].lstrip("# ").split(",")
        out = {}
        for row in rows[1:]:
            cols = dict(zip(header, row.split(",")))
            if cols.get("pxname") == backend and cols.get("svname", "").startswith("r"):
                out[cols["svname"]] = cols["status"]
        return out

    def stop(self) -> None:
        stop_pid(self.proc)


@dataclass
class Cluster:
    directory: Path
    gatehouse: str
    store: str
    target: Target
    issuer: Issuer
    host_keys: Path
    kek_file: Path
    replicas: list[Replica]
    postgres: Optional[Postgres] = None
    moto: Optional[Moto] = None
    haproxy: Optional[Haproxy] = None
    known_hosts: Optional[Path] = None
    agent_key: Optional[Path] = None
    others: list = field(default_factory=list)

    @property
    def config(self) -> Path:
        """Replica 1's file: `gatehouse store/audit/cert/ca … --config` act on the shared store through it."""
        return self.replicas[0].config

    def gh(self, *args, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        return run([self.gatehouse, *args], check=check, timeout=timeout)

    def target_ca_keys(self) -> set[str]:
        keys = set()
        for r in self.replicas:
            if r.alive():
                status, body = r.issuance("/v1/ca/target")
                if status == 200:
                    keys |= {" ".join(ln.split()[:2]) for ln in body.decode().splitlines() if ln.strip()}
        return keys

    def refresh_target_trust(self) -> None:
        self.target.trust(self.target_ca_keys())

    def issue(self, key: Path, port: Optional[int] = None, sub: str = "agent-1", ttl: int = 900) -> dict:
        """POST /v1/certificates (to haproxy's issuance frontend, or to one replica's port) with
        a fresh token; writes KEY-cert.pub and returns the answer."""
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])
        status, answer = post_certificate(port or self.haproxy.issuance_port, self.issuer.token(sub),
                                          " ".join(Path(f"{key}.pub").read_text().split()[:2]), ttl=ttl)
        if status != 200:
            raise HarnessError(f"issuance on port {port} answered {status}: {answer}")
        Path(f"{key}-cert.pub").write_text(answer["certificate"] + "\n")
        return answer

    def stop(self) -> None:
        for p in [self.haproxy] + self.replicas[::-1] + [self.moto, self.issuer, self.target, *self.others]:
            if p is not None:
                try:
                    p.stop()
                except Exception:  # keep stopping the others
                    pass
        if self.postgres is not None:
            self.postgres.destroy()


def post_certificate(port: int, token: str, public_key: str, ttl: int = 900,
                     conn: Optional[http.client.HTTPConnection] = None) -> tuple[int, dict]:
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("POST", "/v1/certificates", body=json.dumps({"public_key": public_key, "ttl": ttl}),
                  headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        r = c.getresponse()
        body = r.read()
        try:
            return r.status, json.loads(body)
        except ValueError:
            return r.status, {"raw": body.decode(errors="replace")}
    finally:
        if own:
            c.close()


def generate_host_keys(directory: Path) -> None:
    """The three files Sources/Bastion/Server/HostKeys.swift reads, made once with ssh-keygen and
    shared by every replica (a client behind the balancer must see one host key)."""
    directory.mkdir(mode=0o700)
    for name, argv in (("ssh_host_ed25519_key", ["-t", "ed25519"]), ("ssh_host_ecdsa_key", ["-t", "ecdsa", "-b", "256"]),
                       ("ssh_host_rsa_key", ["-t", "rsa", "-b", "3072"])):
        run(["ssh-keygen", "-q", *argv, "-N", "", "-C", "gatehouse host key", "-f", directory / name])


def replica_yaml(c: Cluster, r: Replica, recordings_store: Optional[str], log_level: str, balancer_ssh_port: int) -> str:
    if c.store == "postgres":
        store = f"""\
store:
  kind: postgres
  url: "{c.postgres.url}"
  tls: off
  password_file: {c.postgres.password_file}
  key_encryption_key_file: {c.kek_file}
"""
    else:
        store = "store: {kind: local}\n"
    return f"""\
listen: ["127.0.0.1:{r.ssh_port}"]
state: {r.state}
host_keys: {c.host_keys}
recordings: {r.recordings_setting}
log: {{level: {log_level}}}
limits:
  # Behind haproxy every client arrives from haproxy's address: no per-source penalties.
  penalties: {{exempt: ["127.0.0.0/8"]}}
  max_unauthenticated_per_source: 128
targets:
  web-01:
    address: 127.0.0.1
    port: {c.target.port}
    login: {c.target.login}
    host_key: "{c.target.host_key}"
{scopes_yaml(c.directory)}{store}{recordings_store or ""}issuance:
  listen: 127.0.0.1:{r.issuance_port}
  bastion_addresses: ["127.0.0.1:{balancer_ssh_port}"]
  rate_limit: {{per_minute: 1000000, burst: 1000000}}
  mapping:
    key_id: "oidc:{{sub}}"
    principals: ["{{sub}}"]
    groups_claim: groups
    group_scopes: {{ops: [ops]}}
  issuers:
    - issuer: {c.issuer.url}
      audiences: [gatehouse]
      algorithms: [EdDSA]
      jti_replay: true
"""


def start_cluster(directory: Path, gatehouse: str, replicas: int = 3, store: str = "postgres", with_moto: bool = False,
                  recordings_store: bool = False, postgres: Optional[Postgres] = None, log_level: str = "warning") -> Cluster:
    """Starts everything; on any failure stops what was started and raises.

    store="postgres": one database, migrated with `gatehouse store migrate`; replica 1 starts
    first (it creates the CA and publishes it), then the others (they adopt it).
    store="local": no database; each replica's state directory gets a copy of one CA store made
    with `gatehouse ca init` (what an operator of file-state replicas would have to do; the
    audit logs stay per replica). Used by the benchmarks to compare against."""
    directory.mkdir(parents=True, exist_ok=True)
    target = Target(directory)
    c = Cluster(directory, gatehouse, store, target, None, directory / "hostkeys", directory / "kek", [])  # type: ignore[arg-type]
    try:
        c.issuer = Issuer(directory)
        generate_host_keys(c.host_keys)
        # The key-encryption key: 32 random bytes as 64 hex characters and a newline, 0600; every replica reads this one file.
        c.kek_file.write_text(secrets.token_hex(32) + "\n")
        os.chmod(c.kek_file, 0o600)
        if store == "postgres":
            c.postgres = postgres or Postgres()
        if with_moto or recordings_store:
            c.moto = Moto(directory)
        for i in range(1, replicas + 1):
            d = directory / f"replica{i}"
            d.mkdir()
            c.replicas.append(Replica(i, d, free_port(), free_port(), d / "gatehouse.yaml", gatehouse))
        # haproxy's ports go into the replicas' files (bastion_addresses) before haproxy starts.
        hp_ssh, hp_issuance = free_port(), free_port()
        s3 = None
        if recordings_store:
            # recordings_store as issue 16 names it (kind, endpoint, bucket, region, prefix,
            # credentials); the secret from a file; each replica its own replica_id (the
            # default, the host name, is one name for all three on this machine).
            secret = directory / "s3-secret"
            secret.write_text(Moto.secret_key + "\n")
            os.chmod(secret, 0o600)
            s3 = f"""\
recordings_store:
  kind: s3
  endpoint: {c.moto.endpoint}
  bucket: {c.moto.bucket}
  region: {c.moto.region}
  prefix: recordings/
  credentials: {{access_key_id: {Moto.access_key}, secret_access_key_file: {secret}}}
  replica_id: replica@INDEX@
"""
            for r in c.replicas:
                r.shared_recordings = directory / "recordings"
        for r in c.replicas:
            r.config.write_text(replica_yaml(c, r, s3.replace("@INDEX@", str(r.index)) if s3 else None, log_level, hp_ssh))
        if store == "postgres":
            c.gh("store", "migrate", "--config", c.config)
        else:
            c.gh("ca", "init", "--state", c.replicas[0].state)
            for r in c.replicas[1:]:
                r.state.mkdir(mode=0o700)
                shutil.copytree(c.replicas[0].state / "ca", r.state / "ca")
        c.replicas[0].start(c.host_keys)
        for r in c.replicas[1:]:
            r.start(c.host_keys, wait=False)
        for r in c.replicas[1:]:
            r.wait_ready()
        c.refresh_target_trust()
        c.haproxy = Haproxy(directory, c.replicas, hp_ssh, hp_issuance)
        wait_until(lambda: set(c.haproxy.server_states().values()) == {"UP"} and len(c.haproxy.server_states()) == replicas,
                   20, "haproxy to see every replica UP", c.haproxy.proc, c.haproxy.log)
        c.known_hosts = directory / "known_hosts"
        pubs = [" ".join((c.host_keys / f"{n}.pub").read_text().split()[:2])
                for n in ("ssh_host_ed25519_key", "ssh_host_ecdsa_key", "ssh_host_rsa_key")]
        ports = [c.haproxy.ssh_port] + [r.ssh_port for r in c.replicas]
        c.known_hosts.write_text("".join(f"[127.0.0.1]:{p} {k}\n" for p in ports for k in pubs))
        c.agent_key = directory / "agent"
        return c
    except BaseException:
        c.stop()
        raise

