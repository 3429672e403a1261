"""End to end through a live `gatehouse serve` and a real OpenSSH sshd target, driven by an
AutoGen AssistantAgent whose model is a ReplayChatCompletionClient (no LLM): the agent's tool
calls are real, the commands really run (or are really refused) on the target."""
from __future__ import annotations

import json
import socket

import pytest
from autogen_agentchat.agents import AssistantAgent, CodeExecutorAgent
from autogen_agentchat.messages import ToolCallExecutionEvent, ToolCallSummaryMessage
from autogen_core import CancellationToken, FunctionCall
from autogen_core.code_executor import CodeBlock
from autogen_core.models import CreateResult, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient

from gatehouse_client import GatehouseError, run
from gatehouse_client.autogen import GatehouseCodeExecutor, gatehouse_tool

pytestmark = pytest.mark.e2e

from conftest import MODEL_INFO  # noqa: E402


def calls(*pairs: tuple[str, str]) -> CreateResult:
    """One model turn asking for `run_command(target, command)` calls."""
    return CreateResult(
        finish_reason="function_calls",
        content=[FunctionCall(id=f"call-{i}", name="run_command", arguments=json.dumps({"target": t, "command": c}))
                 for i, (t, c) in enumerate(pairs)],
        usage=RequestUsage(prompt_tokens=0, completion_tokens=0),
        cached=False,
    )


def agent_with(bastion, *turns: CreateResult) -> AssistantAgent:
    tool = gatehouse_tool(bastion.connection(), targets=["web-01", "db-01"])
    model = ReplayChatCompletionClient(list(turns), model_info=MODEL_INFO)
    return AssistantAgent("ops_agent", model_client=model, tools=[tool], reflect_on_tool_use=False)


def tool_results(result) -> list:
    out = []
    for m in result.messages:
        if isinstance(m, ToolCallExecutionEvent):
            out.extend(m.content)
    return out


async def test_agent_runs_an_allowed_command_on_the_target(bastion):
    agent = agent_with(bastion, calls(("web-01", "id -un"), ("web-01", f"cat {bastion.directory}/www/index.html")))
    result = await agent.run(task="Who are you on web-01, and what does its index page say?")
    res = tool_results(result)
    assert len(res) == 2
    assert not any(r.is_error for r in res)
    by_call = {r.call_id: r.content for r in res}
    assert by_call["call-0"] == f"exit status: 0\nstdout:\n{bastion.login}\n"
    assert "hello from web-01" in by_call["call-1"]
    assert isinstance(result.messages[-1], ToolCallSummaryMessage)
    # The bastion decided and recorded both, under the certificate's identity.
    decided = bastion.await_audit(lambda r: r["action"] == "policy.decision" and r["outcome"] == "success"
                                  and r["details"].get("request") == "id -un")
    assert decided[-1]["details"]["key_id"] == "agent:pytest" and decided[-1]["details"]["target"] == "web-01"


async def test_agent_reads_a_denial(bastion):
    before = sum(1 for ln in (bastion.directory / "sshd.log").read_text().splitlines() if "Connection from" in ln)
    agent = agent_with(bastion, calls(("web-01", "cat /etc/shadow"), ("web-01", "uname -sr; id"), ("db-01", "uname -sr")))
    result = await agent.run(task="Read the password file.")
    res = {r.call_id: r.content for r in tool_results(result)}
    # No pattern matches: the denial names the rule, the scope and what is accepted here.
    assert "DENIED by Gatehouse" in res["call-0"]
    assert 'no allowed pattern matches "cat /etc/shadow"' in res["call-0"]
    assert "scopes tried: ops" in res["call-0"]
    assert "uname -sr" in res["call-0"] and "(exit status 77;" in res["call-0"]
    # Shell syntax: refused with its rule before anything reaches the target.
    assert "rule: shell-operator" in res["call-1"]
    # No scope reaches db-01.
    assert "DENIED" in res["call-2"] and "none reaches this target" in res["call-2"]
    # Nothing reached the target for any of the three.
    after = sum(1 for ln in (bastion.directory / "sshd.log").read_text().splitlines() if "Connection from" in ln)
    assert after == before
    refused = bastion.await_audit(lambda r: r["action"] == "policy.decision" and r["outcome"] == "refused"
                                  and r["details"].get("request") == "cat /etc/shadow")
    assert refused


async def test_run_returns_bytes_text_status_and_denial(bastion):
    r = await run("127.0.0.1", bastion.bastion_port, "web-01", ["echo", "it's", "a $HOME test"], bastion.agent_key,
                  known_hosts=bastion.known_hosts)
    assert r.exit_status == 0 and r.denial is None
    assert r.stdout == b"it's a $HOME test\n" and r.stdout_text == "it's a $HOME test\n"
    d = await run("127.0.0.1", bastion.bastion_port, "web-01", "echo $HOME", bastion.agent_key, known_hosts=bastion.known_hosts)
    assert d.exit_status == 77 and d.denial is not None
    assert d.denial.rule == "parameter-expansion" and d.denial.scopes_tried == ["ops"]
    assert "echo {words...}" in d.denial.accepted_patterns
    assert d.stderr_text.startswith("gatehouse: denied: ")


async def test_host_key_is_verified(bastion, tmp_path):
    other = tmp_path / "known_hosts"
    other.write_text(f"[127.0.0.1]:{bastion.bastion_port} ssh-ed25519 "
                     "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
    with pytest.raises(GatehouseError):
        await run("127.0.0.1", bastion.bastion_port, "web-01", "uname -sr", bastion.agent_key, known_hosts=other)
    with pytest.raises(ValueError):
        await run("127.0.0.1", bastion.bastion_port, "web-01", "uname -sr", bastion.agent_key)


async def test_code_executor_runs_a_block_line_by_line(bastion):
    ex = GatehouseCodeExecutor(bastion.connection(), "web-01")
    async with ex:
        ok = await ex.execute_code_blocks([CodeBlock("# who and where\nid -un\nuname -sr\n", "sh")], CancellationToken())
        assert ok.exit_code == 0
        assert f"$ id -un\n{bastion.login}\n" in ok.output and "$ uname -sr\nLinux" in ok.output
        denied = await ex.execute_code_blocks([CodeBlock("hostname\nrm -rf /tmp/x\nid -un\n", "bash")], CancellationToken())
        assert denied.exit_code == 77
        assert "DENIED by Gatehouse" in denied.output and "rm -rf /tmp/x" in denied.output
        assert "$ id -un" not in denied.output  # stops at the first failure
        py = await ex.execute_code_blocks([CodeBlock("print(1)", "python")], CancellationToken())
        assert py.exit_code == 1 and "unsupported language" in py.output


async def test_code_executor_stdin_mode_through_an_allowed_interpreter(bastion):
    ex = GatehouseCodeExecutor(bastion.connection(), "web-01", mode="stdin", interpreter="bash -s")
    script = "set -e\nx=$(echo piped | tr a-z A-Z)\necho \"$x\"; id -un\n"
    r = await ex.execute_code_blocks([CodeBlock(script, "bash")], CancellationToken())
    assert r.exit_code == 0, r.output
    assert r.output == f"PIPED\n{bastion.login}\n"
    # The same interpreter not in the allowlist is refused.
    ex2 = GatehouseCodeExecutor(bastion.connection(), "web-01", mode="stdin", interpreter="sh -s")
    r2 = await ex2.execute_code_blocks([CodeBlock("echo hi", "sh")], CancellationToken())
    assert r2.exit_code == 77 and "DENIED" in r2.output


async def test_code_executor_agent(bastion):
    from autogen_agentchat.agents import ApprovalRequest, ApprovalResponse
    from autogen_agentchat.messages import TextMessage

    # Gatehouse's allowlist is the boundary; an approval hook still sees every block first (a
    # human, or a log), so the test wires one and checks it saw the code it approved.
    seen: list[str] = []

    def approve(request: ApprovalRequest) -> ApprovalResponse:
        seen.append(request.code)
        return ApprovalResponse(approved=True, reason="allowlist enforced by Gatehouse")

    ex = GatehouseCodeExecutor(bastion.connection(), "web-01")
    agent = CodeExecutorAgent("executor", code_executor=ex, supported_languages=["sh", "bash"], approval_func=approve)

    resp = await agent.on_messages([TextMessage(content="```sh\nuname -sr\nhostname\n```", source="user")],
                                   CancellationToken())
    assert "$ uname -sr\nLinux" in resp.chat_message.content
    assert socket.gethostname() in resp.chat_message.content
    assert len(seen) == 1 and "uname -sr" in seen[0]


def test_example_agent_runs(bastion):
    """examples/ops_agent.py with a scripted model, on a certificate minted by `gatehouse cert issue`."""
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "examples" / "ops_agent.py"
    r = subprocess.run([sys.executable, str(example), "--bastion", f"127.0.0.1:{bastion.bastion_port}",
                        "--known-hosts", str(bastion.known_hosts), "--key", str(bastion.agent_key), "--target", "web-01",
                        "--replay", "uname -sr", "--replay", "cat /etc/shadow", "Check web-01"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "exit status: 0\nstdout:\nLinux" in r.stdout
    assert "DENIED by Gatehouse" in r.stdout
    assert "--- final: TERMINATE" in r.stdout


async def test_certificate_from_an_untrusted_ca_is_refused(bastion, tmp_path):
    import asyncssh

    from gatehouse_client import ensure_key

    key = tmp_path / "rogue"
    ensure_key(key)
    with pytest.raises(GatehouseError, match="no certificate"):
        await run("127.0.0.1", bastion.bastion_port, "web-01", "uname -sr", key, known_hosts=bastion.known_hosts)
    rogue_ca = asyncssh.generate_private_key("ssh-ed25519")
    cert = rogue_ca.generate_user_certificate(asyncssh.read_public_key(f"{key}.pub"), "rogue", principals=["agent"])
    (tmp_path / "rogue-cert.pub").write_bytes(cert.export_certificate("openssh"))
    with pytest.raises(GatehouseError, match="refused the certificate"):
        await run("127.0.0.1", bastion.bastion_port, "web-01", "uname -sr", key, known_hosts=bastion.known_hosts)


def test_audit_chain_is_intact_after_all_of_it(bastion):
    import subprocess

    r = subprocess.run([bastion.gatehouse, "audit", "verify", "--state", str(bastion.state)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "intact" in r.stdout, r.stdout + r.stderr
