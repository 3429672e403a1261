"""Running one command on a target through the Gatehouse bastion (asyncssh), and reading its
denials."""
from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

from .approvals import APPROVAL_EXIT_STATUS, Approval, parse_approval
from .errors import GatehouseConnectionError, GatehouseError

__all__ = ["Denial", "RunResult", "parse_denial", "run", "run_sync", "DENIED_EXIT_STATUS"]

#: Exit status of every policy denial (EX_NOPERM in sysexits.h).
DENIED_EXIT_STATUS = 77

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class Denial:
    """Why Gatehouse refused a request, as it told the agent on stderr."""

    reason: str
    rule: Optional[str] = None
    code: Optional[str] = None
    scopes_tried: list[str] = field(default_factory=list)
    unknown_scopes: list[str] = field(default_factory=list)
    accepted_patterns: list[str] = field(default_factory=list)
    sentence: str = ""
    exit_status: int = DENIED_EXIT_STATUS

    def describe(self) -> str:
        """A few lines an agent (an LLM) can act on."""
        lines = [f"DENIED by Gatehouse: {self.reason}."]
        if self.rule:
            lines.append(f"rule: {self.rule}")
        lines.append("scopes tried: " + (", ".join(self.scopes_tried) if self.scopes_tried else "(none reaches this target)"))
        if self.unknown_scopes:
            lines.append("unknown scopes: " + ", ".join(self.unknown_scopes))
        if self.accepted_patterns:
            if self.rule == "task-targets":
                lines.append("your task's certificate covers only these targets:")
            elif self.rule == "task-commands":
                lines.append("your task's certificate covers only these commands (stay with your plan, or ask for a new certificate):")
            else:
                lines.append("commands accepted on this target:")
            lines.extend(f"  {p}" for p in self.accepted_patterns)
        return "\n".join(lines)


_HUMAN = re.compile(
    r"^gatehouse: denied: (?P<reason>.*?)\."
    r"(?: No scope of this certificate reaches this target\.| Scopes tried: (?P<tried>.*?)\.)"
    r"(?: Unknown scopes \(grant nothing\): (?P<unknown>.*?)\.)?"
    r"(?: Accepted here: (?P<accepted>`.*`)\.)?\s*$"
)


def _split_list(s: Optional[str]) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()] if s else []


def parse_denial(stderr: Union[str, bytes], exit_status: Optional[int] = DENIED_EXIT_STATUS) -> Optional[Denial]:
    """The denial in a session's stderr, or None. Only an exit status of 77 (or None: not
    known) counts: a command that itself prints the words is not a denial.

    The `gatehouse-denial: {json}` machine line is preferred; the human sentence
    (`gatehouse: denied: REASON. Scopes tried: A, B. Accepted here: `P1`; `P2`.`) is the
    fallback."""
    if exit_status is not None and exit_status != DENIED_EXIT_STATUS:
        return None
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, (bytes, bytearray)) else stderr
    lines = text.splitlines()
    sentence = next((ln for ln in lines if ln.startswith("gatehouse: denied: ")), "")
    for ln in lines:
        if ln.startswith("gatehouse-denial: "):
            try:
                obj = json.loads(ln[len("gatehouse-denial: "):])
            except ValueError:
                break
            if not isinstance(obj, dict) or "reason" not in obj:
                break
            return Denial(
                reason=str(obj.get("reason", "")),
                rule=obj.get("rule"),
                code=obj.get("code"),
                scopes_tried=[str(x) for x in obj.get("scopes_tried") or []],
                unknown_scopes=[str(x) for x in obj.get("unknown_scopes") or []],
                accepted_patterns=[str(x) for x in obj.get("accepted_patterns") or []],
                sentence=sentence,
                exit_status=int(obj.get("exit_status", DENIED_EXIT_STATUS)),
            )
    if not sentence:
        return None
    m = _HUMAN.match(sentence)
    if not m:
        # A sentence we do not know the shape of: keep the whole text as the reason.
        return Denial(reason=sentence[len("gatehouse: denied: "):].rstrip("."), sentence=sentence)
    accepted = re.findall(r"`([^`]*)`", m.group("accepted") or "")
    return Denial(
        reason=m.group("reason"),
        scopes_tried=_split_list(m.group("tried")),
        unknown_scopes=_split_list(m.group("unknown")),
        accepted_patterns=accepted,
        sentence=sentence,
    )


@dataclass(frozen=True)
class RunResult:
    target: str
    command: str
    stdout: bytes
    stderr: bytes
    exit_status: Optional[int]
    exit_signal: Optional[str] = None
    denial: Optional[Denial] = None
    #: Set when the command needs (or needed) a person's approval: exit status 75 while pending,
    #: 77 when the approval was denied, expired or already used.
    approval: Optional["Approval"] = None

    @property
    def pending(self) -> bool:
        return self.approval is not None and self.approval.pending

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", "replace")

    @property
    def denied(self) -> bool:
        return self.denial is not None

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def describe(self, limit: int = 16000) -> str:
        """The result as text for an agent: output, errors, exit status, the denial, or what to
        do about an approval."""
        if self.approval is not None and (self.pending or self.denial is None):
            return self.approval.describe() + f"\n(exit status {self.exit_status}; the command did not reach {self.target})"
        if self.denial is not None:
            if self.approval is not None:
                return self.denial.describe() + "\n" + self.approval.describe() + f"\n(exit status {self.exit_status}; the command did not reach {self.target})"
            return self.denial.describe() + f"\n(exit status {self.exit_status}; the command did not reach {self.target})"
        parts = [f"exit status: {self.exit_status}" + (f" (signal {self.exit_signal})" if self.exit_signal else "")]
        out, err = self.stdout_text, self.stderr_text
        if out:
            parts.append("stdout:\n" + _clip(out, limit))
        if err:
            parts.append("stderr:\n" + _clip(err, limit))
        if not out and not err:
            parts.append("(no output)")
        return "\n".join(parts)


def _clip(s: str, limit: int) -> str:
    return s if len(s) <= limit else s[:limit] + f"\n… ({len(s) - limit} more characters cut)"


def _command_line(command: Union[str, Sequence[str]]) -> str:
    if isinstance(command, str):
        return command
    return shlex.join(list(command))


async def run(
    host: str,
    port: int,
    target: str,
    command: Union[str, Sequence[str]],
    key_path: PathLike,
    *,
    cert_path: Optional[PathLike] = None,
    known_hosts: Optional[PathLike] = None,
    verify_host_key: bool = True,
    input: Optional[Union[bytes, str]] = None,
    timeout: Optional[float] = 300.0,
    connect_timeout: float = 20.0,
    env: Optional[dict] = None,
) -> RunResult:
    """Runs `command` on `target` through the bastion at host:port and returns what came back.

    The SSH user name is the target's name; the login on the target comes from Gatehouse's
    configuration. `key_path` is the agent's private key, `cert_path` its certificate (default
    `<key_path>-cert.pub`). The bastion's host key is checked against `known_hosts` (OpenSSH
    format: the `known_hosts:` lines `gatehouse serve` prints, or `@cert-authority` lines);
    `verify_host_key=False` must be said explicitly to skip the check.

    A command given as a list is quoted with shlex.join; Gatehouse splits it by POSIX rules and
    refuses anything a shell would interpret. A denial comes back as a result with
    exit status 77 and `.denial` set, never as an exception."""
    import asyncssh

    if known_hosts is None and verify_host_key:
        raise ValueError("known_hosts is required to verify the bastion's host key (or pass verify_host_key=False)")
    key_path = Path(key_path)
    cert = Path(cert_path) if cert_path is not None else Path(f"{key_path}-cert.pub")
    if not cert.exists():
        raise GatehouseError(f"no certificate at {cert}: obtain one first (obtain_certificate)")
    key = asyncssh.read_private_key(str(key_path))
    certificate = asyncssh.read_certificate(str(cert))
    line = _command_line(command)
    try:
        conn = await asyncio.wait_for(
            asyncssh.connect(
                host,
                port,
                username=target,
                client_keys=[(key, certificate)],
                known_hosts=str(known_hosts) if verify_host_key else None,
                agent_path=None,
                preferred_auth="publickey",
                config=None,
                login_timeout=connect_timeout,
            ),
            timeout=connect_timeout + 5,
        )
    except asyncssh.PermissionDenied as e:
        raise GatehouseError(f"the bastion refused the certificate for {target}: {e}") from e
    except asyncssh.HostKeyNotVerifiable as e:
        raise GatehouseError(f"the bastion's host key is not in {known_hosts}: {e}") from e
    except (OSError, asyncio.TimeoutError, asyncssh.Error) as e:
        raise GatehouseConnectionError(f"cannot connect to the bastion at {host}:{port}: {e}") from e
    try:
        async with conn:
            data = input.encode() if isinstance(input, str) else input
            completed = await conn.run(line, input=data, encoding=None, check=False, timeout=timeout, env=env or ())
    except asyncssh.TimeoutError as e:
        return RunResult(target, line, e.stdout or b"", (e.stderr or b"") + f"\n(timed out after {timeout}s)".encode(),
                         e.exit_status, None, None)
    except asyncssh.ChannelOpenError as e:
        raise GatehouseError(f"the bastion refused the session for {target}: {e}") from e
    stdout = completed.stdout or b""
    stderr = completed.stderr or b""
    signal = completed.exit_signal[0] if completed.exit_signal else None
    status = completed.exit_status
    approval = parse_approval(stderr) if status in (APPROVAL_EXIT_STATUS, DENIED_EXIT_STATUS) else None
    return RunResult(target, line, stdout, stderr, status, signal, parse_denial(stderr, status), approval)


def run_sync(*args, **kwargs) -> RunResult:
    """`run` for code without an event loop."""
    return asyncio.run(run(*args, **kwargs))
