"""AutoGen (0.7) integration: a tool that runs one command on a target through Gatehouse, and a
code executor that runs shell code blocks there.

Only what the certificate's scopes allow will run: Gatehouse checks every exec request against
the scope's allowlist before anything reaches the target. A denial is returned to the agent as
text (reason, rule, the scopes tried and the commands accepted on that target) so the model can
correct itself; it is not an exception.
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

from autogen_core import CancellationToken
from autogen_core.code_executor import CodeBlock, CodeExecutor, CodeResult
from autogen_core.tools import FunctionTool

from .approvals import Approval, wait_for_approval
from .certificates import Certificate, make_context, obtain_certificate_async
from .errors import GatehouseError
from .ssh import RunResult, run

__all__ = ["GatehouseConnection", "gatehouse_tool", "approval_wait_tool", "GatehouseCodeExecutor", "TaskPlan", "TaskCredential",
           "task_credential"]

PathLike = Union[str, os.PathLike]


@dataclass
class GatehouseConnection:
    """How to reach the bastion and which identity to present."""

    host: str
    port: int
    key_path: PathLike
    known_hosts: Optional[PathLike] = None
    cert_path: Optional[PathLike] = None
    verify_host_key: bool = True
    timeout: float = 300.0
    connect_timeout: float = 20.0

    async def run(self, target: str, command: Union[str, Sequence[str]], input: Optional[Union[bytes, str]] = None) -> RunResult:
        return await run(
            self.host, self.port, target, command, self.key_path,
            cert_path=self.cert_path, known_hosts=self.known_hosts, verify_host_key=self.verify_host_key,
            input=input, timeout=self.timeout, connect_timeout=self.connect_timeout,
        )

    async def wait_for_approval(self, approval_id: str, timeout: float = 50.0) -> Approval:
        """A bounded wait (≤ 300 s, default 50 s: under an agent's 60 s tool clock) for a person
        to decide `approval_id`, with this connection's certificate."""
        return await wait_for_approval(self.host, self.port, approval_id, self.key_path, cert_path=self.cert_path,
                                       known_hosts=self.known_hosts, timeout=timeout, connect_timeout=self.connect_timeout)


_TOOL_DESCRIPTION = (
    "Run one command on a production host through the Gatehouse SSH bastion. "
    "`target` is the host's name as configured on the bastion (e.g. web-01); `command` is one "
    "command line with its arguments. No shell features: pipes, `;`, `&&`, redirections, `$VAR`, "
    "globs and backquotes are refused. Only commands allowed by your scopes run; a refusal "
    "lists the commands accepted on that target. Some commands need a person's approval first: "
    "they return PENDING APPROVAL with an id at once; call wait_for_approval with it, and once "
    "approved resend exactly the same command (it then runs once). Returns the exit status, stdout and stderr."
)


def approval_wait_tool(connection: GatehouseConnection, *, name: str = "wait_for_approval", max_wait: float = 50.0) -> FunctionTool:
    """An AutoGen `FunctionTool` `wait_for_approval(approval_id) -> str`: waits at most `max_wait`
    seconds (under the 60 s at which tool calls die) and says what to do next: wait again,
    resend the identical command, or stop (with the approver's reason)."""
    conn = connection

    async def wait_for_approval(approval_id: str) -> str:
        try:
            approval = await conn.wait_for_approval(approval_id, timeout=max_wait)
        except GatehouseError as e:
            return f"ERROR: {e}"
        if approval.pending:
            return approval.describe().replace("PENDING APPROVAL", "STILL PENDING", 1) + " (call wait_for_approval again)"
        return approval.describe()

    return FunctionTool(wait_for_approval, name=name, strict=False,
                        description="Wait (up to about a minute) for a person to approve or deny a pending Gatehouse approval "
                                    "request, by its approval_id. Says whether to wait again, resend the identical command, or stop.")


def gatehouse_tool(
    connection: Optional[GatehouseConnection] = None,
    *,
    host: Optional[str] = None,
    port: Optional[int] = None,
    key_path: Optional[PathLike] = None,
    known_hosts: Optional[PathLike] = None,
    cert_path: Optional[PathLike] = None,
    targets: Optional[Sequence[str]] = None,
    name: str = "run_command",
    description: Optional[str] = None,
    output_limit: int = 16000,
) -> FunctionTool:
    """An AutoGen `FunctionTool` `run_command(target, command) -> str` over Gatehouse.

    `targets`, when given, are listed in the description and others are refused locally (a
    convenience for the model; the bastion enforces the real policy either way)."""
    if connection is None:
        if host is None or port is None or key_path is None:
            raise ValueError("give a GatehouseConnection or host, port and key_path")
        connection = GatehouseConnection(host, port, key_path, known_hosts=known_hosts, cert_path=cert_path)
    conn = connection
    allowed = list(targets) if targets else None

    async def run_command(target: str, command: str) -> str:
        if allowed is not None and target not in allowed:
            return f"ERROR: target {target!r} is not one of this tool's targets: {', '.join(allowed)}"
        try:
            result = await conn.run(target, command)
        except GatehouseError as e:
            return f"ERROR: {e}"
        return result.describe(limit=output_limit)

    desc = description or _TOOL_DESCRIPTION
    if allowed:
        desc += " Targets: " + ", ".join(allowed) + "."
    return FunctionTool(run_command, description=desc, name=name, strict=False)


class GatehouseCodeExecutor(CodeExecutor):
    """Runs `sh`/`bash` code blocks on one target through Gatehouse.

    The bastion's allowlist decides what runs, so the executor has two modes:

    - `mode="lines"` (default): each non-empty, non-comment line of a block is sent as its own
      exec request and checked against the allowlist on its own; execution stops at the first
      line that fails or is denied (like `set -e`). Lines must be plain commands (no pipes,
      `;`, `&&`, redirections, variables, globs, line continuations): the bastion refuses shell
      syntax by design. This works with ordinary least-privilege scopes.
    - `mode="stdin"`: the whole block is sent on stdin to one `interpreter` command (default
      `bash -s`), which the scope must allow literally. A scope that allows `bash -s` (or
      `sh -c {script}`) allows *anything* on that target: the interpreter is not command-
      filtered; only the recording and audit log see what ran. Use it only on targets where the
      scope is meant to grant a shell.

    Each block (or line) is its own SSH connection; there is no state between blocks except what
    the commands leave on the target. `start`, `stop` and `restart` have nothing to hold.
    """

    SUPPORTED_LANGUAGES = ("sh", "bash", "shell", "console")

    def __init__(
        self,
        connection: GatehouseConnection,
        target: str,
        *,
        mode: str = "lines",
        interpreter: str = "bash -s",
        timeout: float = 300.0,
    ):
        if mode not in ("lines", "stdin"):
            raise ValueError("mode must be 'lines' or 'stdin'")
        self._connection = connection
        self._target = target
        self._mode = mode
        self._interpreter = interpreter
        self._timeout = timeout
        self._started = False

    @property
    def target(self) -> str:
        return self._target

    @property
    def supported_languages(self) -> List[str]:
        return list(self.SUPPORTED_LANGUAGES)

    async def start(self) -> None:
        self._started = True

    async def stop(self) -> None:
        self._started = False

    async def restart(self) -> None:
        self._started = True

    async def execute_code_blocks(self, code_blocks: List[CodeBlock], cancellation_token: CancellationToken) -> CodeResult:
        outputs: list[str] = []
        exit_code = 0
        for block in code_blocks:
            lang = (block.language or "").strip().lower()
            if lang not in self.SUPPORTED_LANGUAGES:
                return CodeResult(exit_code=1, output="\n".join(outputs + [
                    f"unsupported language {block.language!r}: this executor runs {', '.join(self.SUPPORTED_LANGUAGES)} "
                    f"blocks on {self._target} through Gatehouse"]))
            if self._mode == "stdin":
                code, text = await self._one(self._interpreter, block.code, cancellation_token)
                outputs.append(text)
                exit_code = code
                if code != 0:
                    break
            else:
                commands = [ln.strip() for ln in block.code.splitlines()]
                commands = [c for c in commands if c and not c.startswith("#")]
                for c in commands:
                    code, text = await self._one(c, None, cancellation_token)
                    outputs.append(f"$ {c}\n{text}")
                    exit_code = code
                    if code != 0:
                        break
            if exit_code != 0:
                break
        return CodeResult(exit_code=exit_code, output="\n".join(outputs))

    async def _one(self, command: str, stdin: Optional[str], cancellation_token: CancellationToken) -> tuple[int, str]:
        task = asyncio.ensure_future(asyncio.wait_for(self._connection.run(self._target, command, input=stdin), self._timeout))
        cancellation_token.link_future(task)
        try:
            result = await task
        except GatehouseError as e:
            return 255, f"ERROR: {e}"
        if result.pending:
            # Wait for a person within this executor's own time budget, then resend once.
            approval = result.approval
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._timeout
            while approval.pending and loop.time() < deadline:
                try:
                    approval = await self._connection.wait_for_approval(approval.approval_id, timeout=min(50.0, max(0.0, deadline - loop.time())))
                except GatehouseError as e:
                    return 255, f"ERROR: {e}"
            if approval.next != "resend":
                return result.exit_status or 75, approval.describe()
            result = await asyncio.wait_for(self._connection.run(self._target, command, input=stdin), self._timeout)
        if result.denial is not None or result.approval is not None:
            return result.exit_status or 77, result.describe()
        text = result.stdout_text + result.stderr_text
        status = result.exit_status if result.exit_status is not None else 255
        return status, text


@dataclass(frozen=True)
class TaskPlan:
    """What an agent means to do before it starts: the `(target, command)` steps of its plan,
    the task id, the prompt that asked for it and why. The certificate minted from it covers
    exactly these steps, so a model that strays from its plan is refused by the bastion with a
    `task-commands` or `task-targets` denial it can read and recover from."""

    task_id: str
    steps: Sequence[Tuple[str, str]]
    prompt: Optional[str] = None
    reason: Optional[str] = None

    @property
    def targets(self) -> list[str]:
        return sorted({target for target, _ in self.steps})

    @property
    def commands(self) -> list[str]:
        seen: list[str] = []
        for _, command in self.steps:
            if command not in seen:
                seen.append(command)
        return seen


@dataclass(frozen=True)
class TaskCredential:
    """A certificate narrowed to one plan, and the connection and tool that use it."""

    plan: TaskPlan
    certificate: Certificate
    connection: GatehouseConnection

    def tool(self, **kwargs) -> FunctionTool:
        """`run_command` limited (locally, for the model's benefit) to the plan's targets; the
        bastion enforces the certificate's narrowing either way."""
        kwargs.setdefault("targets", self.plan.targets)
        kwargs.setdefault("description", _TOOL_DESCRIPTION + " Your certificate covers only your plan: "
                          + "; ".join(f"{t}: {c}" for t, c in self.plan.steps) + ".")
        return gatehouse_tool(self.connection, **kwargs)


async def task_credential(
    server_url: str,
    token: str,
    key_path: PathLike,
    plan: TaskPlan,
    *,
    host: str,
    port: int,
    known_hosts: Optional[PathLike] = None,
    scopes: Optional[Sequence[str]] = None,
    ttl: int = 600,
    max_sessions: Optional[int] = None,
    send_prompt: bool = True,
    ca_file: Optional[PathLike] = None,
) -> TaskCredential:
    """Mints a certificate narrowed to `plan` (its targets and exact commands, optionally a
    session budget) before the agent starts. The prompt's text goes to the issuance audit record
    (`send_prompt=False` sends only its hash). Raises the typed `CertificateRequestError` when
    the plan asks for something the token does not grant (403 `not_granted`, naming it)."""
    if not plan.steps:
        raise ValueError("a task plan needs at least one (target, command) step")
    context = make_context(task_id=plan.task_id, prompt=plan.prompt, reason=plan.reason, send_prompt=send_prompt)
    certificate = await obtain_certificate_async(
        server_url, token, key_path, ttl, context, ca_file,
        scopes=scopes, targets=plan.targets, commands=plan.commands, max_sessions=max_sessions,
    )
    connection = GatehouseConnection(host, port, key_path, known_hosts=known_hosts, cert_path=certificate.certificate_path)
    return TaskCredential(plan, certificate, connection)
