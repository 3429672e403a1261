"""Approvals that fit an agent's clock: a command a scope marks for review is answered at once
(exit status 75, EX_TEMPFAIL, with a `gatehouse-approval: {json}` line) instead of holding the
tool call; the agent waits with a bounded call and resends the byte-identical command once a
person approved it. It then runs exactly once."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Optional, Union

from .errors import GatehouseError

__all__ = ["Approval", "APPROVAL_EXIT_STATUS", "RESERVED_TARGET", "parse_approval", "wait_for_approval"]

#: Exit status of a command waiting for a person's approval (EX_TEMPFAIL: "try again later").
APPROVAL_EXIT_STATUS = 75
#: The SSH user name that reaches the bastion itself: `ssh gatehouse@BASTION -- approval wait ID`.
RESERVED_TARGET = "gatehouse"
_PREFIX = "gatehouse-approval: "

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class Approval:
    """A request for a person's approval, as the bastion reported it."""

    approval_id: str
    status: str          # pending | approved | denied | expired | consumed
    next: str            # wait | resend | stop
    retry_after: int
    target: str
    command: str
    expires: str
    decided_by: Optional[str] = None
    reason: Optional[str] = None

    @classmethod
    def from_json(cls, obj: dict) -> "Approval":
        return cls(approval_id=str(obj["approval_id"]), status=str(obj["status"]), next=str(obj["next"]),
                   retry_after=int(obj.get("retry_after", 0)), target=str(obj.get("target", "")),
                   command=str(obj.get("command", "")), expires=str(obj.get("expires", "")),
                   decided_by=obj.get("decided_by"), reason=obj.get("reason"))

    @property
    def pending(self) -> bool:
        return self.next == "wait"

    def describe(self) -> str:
        """What a model should do next, in words it can act on."""
        if self.next == "wait":
            return (f"PENDING APPROVAL {self.approval_id}: a person must approve `{self.command}` on {self.target} before it runs. "
                    f"Call wait_for_approval(approval_id=\"{self.approval_id}\"), then resend exactly the same command once approved.")
        if self.next == "resend":
            return (f"APPROVED {self.approval_id} by {self.decided_by or 'an approver'}: resend exactly `{self.command}` on {self.target} "
                    f"now; it runs once (before {self.expires}).")
        why = f": {self.reason}" if self.reason else ""
        return f"STOP: approval {self.approval_id} is {self.status}{why}. Do not retry `{self.command}`."


def parse_approval(text: Union[str, bytes]) -> Optional[Approval]:
    """The `gatehouse-approval: {json}` line in a session's stderr (or a wait's stdout), if any."""
    s = text.decode("utf-8", "replace") if isinstance(text, (bytes, bytearray)) else text
    for line in s.splitlines():
        if line.startswith(_PREFIX):
            try:
                return Approval.from_json(json.loads(line[len(_PREFIX):]))
            except (ValueError, KeyError, TypeError):
                return None
    return None


async def wait_for_approval(host: str, port: int, approval_id: str, key_path: PathLike, *, cert_path: Optional[PathLike] = None,
                            known_hosts: Optional[PathLike] = None, timeout: float = 50.0, connect_timeout: float = 20.0) -> Approval:
    """Waits (at most `timeout` seconds; the bastion caps it at 300) for request `approval_id`
    to be decided, with the certificate the agent already has. Returns the status then: `next`
    is `wait` (still pending: wait again), `resend` (approved: resend the identical command) or
    `stop` (denied with `.reason`, expired or used). Only the certificate's own requests (same key
    id and task, or same certificate) are found."""
    from .ssh import run

    seconds = max(0, min(int(timeout), 300))
    result = await run(host, port, RESERVED_TARGET, ["approval", "wait", approval_id, "--timeout", str(seconds)], key_path,
                       cert_path=cert_path, known_hosts=known_hosts, timeout=seconds + 30, connect_timeout=connect_timeout)
    if result.exit_status == 0:
        try:
            return Approval.from_json(json.loads(result.stdout_text))
        except (ValueError, KeyError, TypeError) as e:
            raise GatehouseError(f"the bastion's answer to the wait is not an approval: {result.stdout_text[:200]!r}") from e
    reason = result.denial.reason if result.denial else result.stderr_text.strip()
    raise GatehouseError(f"cannot wait for approval {approval_id}: {reason}")
