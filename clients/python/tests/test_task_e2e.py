"""Least privilege per task, end to end with real parts: a glewlwyd ID token -> a certificate
narrowed to one task (scopes, targets, commands, a session budget) -> a live `gatehouse serve`
in front of a real sshd. The task's commands run; what its scopes would allow beyond the task is
refused with the limit that refused it; asking for more than the token grants is refused at
issuance and audited; the prompt is findable from every session of the task.

REQUIRES the OIDC issuance service in GATEHOUSE_BIN and Debian's glewlwyd."""
from __future__ import annotations

import json
import subprocess

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import ToolCallExecutionEvent
from autogen_core import FunctionCall
from autogen_core.models import CreateResult, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient

from gatehouse_client import Forbidden, make_context, obtain_certificate
from gatehouse_client.autogen import TaskPlan, task_credential
from gatehouse_client.ssh import run

from conftest import MODEL_INFO, issuance_section, restart_serve, start_bastion, start_provider, stop_bastion, stop_provider

pytestmark = [pytest.mark.e2e, pytest.mark.issuance]


PROMPT = "Find out which kernel web-01 runs and as which account commands run there.\nDo nothing else."


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    p = start_provider(tmp_path_factory.mktemp("glewlwyd-task"), ["alice=ops"])
    yield p
    stop_provider(p)


@pytest.fixture(scope="module")
def bastion(tmp_path_factory, idp):
    section = issuance_section(idp, {"ops": ["fleet", "web-read"]})
    b = start_bastion(tmp_path_factory.mktemp("gatehouse-task"), issuance=section)
    yield b
    stop_bastion(b)


async def _run(b, cert, target, command):
    return await run("127.0.0.1", b.bastion_port, target, command, cert.key_path, cert_path=cert.certificate_path,
                     known_hosts=b.known_hosts, timeout=60)


def _gh(b, *args) -> subprocess.CompletedProcess:
    return subprocess.run([b.gatehouse, *args], capture_output=True, text=True, timeout=60)


async def test_a_task_certificate_runs_its_plan_and_nothing_else(bastion, idp, tmp_path):
    b = bastion
    ctx = make_context(task_id="ticket-7", prompt=PROMPT, reason="kernel audit", send_prompt=True)
    cert = obtain_certificate(b.issuance_url, idp.token("alice"), tmp_path / "agent", ttl=600, context=ctx,
                              scopes=["fleet"], targets=["web-01"], commands=["uname -sr", "id -un"])
    assert cert.scopes == ["fleet"]
    listing = subprocess.run(["ssh-keygen", "-L", "-f", str(cert.certificate_path)], capture_output=True, text=True).stdout
    assert "targets@gatehouse" in listing and "commands@gatehouse" in listing, listing

    kernel = await _run(b, cert, "web-01", "uname -sr")
    assert kernel.exit_status == 0 and kernel.stdout_text.startswith("Linux")
    account = await _run(b, cert, "web-01", "id -un")
    assert account.exit_status == 0 and account.stdout_text.strip() == b.login

    stray = await _run(b, cert, "web-01", "hostname")  # the scope allows it, the task does not
    assert stray.exit_status == 77 and stray.denial is not None
    assert (stray.denial.code, stray.denial.rule) == ("outside-task", "task-commands")
    assert stray.denial.accepted_patterns == ["uname -sr", "id -un"]
    elsewhere = await _run(b, cert, "db-01", "uname -sr")  # the scope reaches db-01, the task does not
    assert elsewhere.exit_status == 77 and elsewhere.denial.rule == "task-targets"

    # Stock OpenSSH is held to the same certificate.
    ssh = subprocess.run(["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={b.known_hosts}",
                          "-o", "IdentitiesOnly=yes", "-i", str(cert.key_path), "-o", f"CertificateFile={cert.certificate_path}",
                          "-p", str(b.bastion_port), "web-01@127.0.0.1", "--", "echo", "off", "plan"],
                         capture_output=True, text=True, timeout=60)
    assert ssh.returncode == 77 and '"rule":"task-commands"' in ssh.stderr, ssh.stderr

    # The prompt is findable from every session of the task, and the audit chain verifies.
    sessions = b.await_audit(lambda r: r["action"] == "session.end" and str(r["details"].get("serial")) == str(cert.serial), timeout=15)
    assert sessions
    listed = _gh(b, "sessions", "list", "--recordings", str(b.directory / "recordings"), "--task", "ticket-7", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {r["command"] for r in rows} == {"uname -sr", "id -un"}, rows
    for row in rows:
        shown = _gh(b, "sessions", "show", "--recordings", str(b.directory / "recordings"), "--state", str(b.state), row["recording_id"])
        assert shown.returncode == 0, shown.stderr
        assert "Find out which kernel web-01 runs" in shown.stdout and "Do nothing else." in shown.stdout, shown.stdout
        assert "ticket-7" in shown.stdout and "kernel audit" in shown.stdout and "oidc:" in shown.stdout
    trail = _gh(b, "audit", "show", "--state", str(b.state), "--serial", str(cert.serial))
    assert trail.returncode == 0, trail.stderr
    for action in ("cert.issue", "ssh.login", "policy.decision", "session.end"):
        assert action in trail.stdout, (action, trail.stdout)
    assert "task-targets" in trail.stdout and "task-commands" in trail.stdout
    assert "audit log intact" in trail.stdout
    issued = b.await_audit(lambda r: r["action"] == "cert.issue" and str(r["details"].get("serial")) == str(cert.serial))
    assert issued[-1]["details"]["prompt"] == PROMPT
    assert _gh(b, "audit", "verify", "--state", str(b.state)).returncode == 0


@pytest.mark.parametrize("ask, check, named", [
    ({"scopes": ["ops"]}, "scopes", "ops"),                                   # a scope alice's groups do not map to
    ({"targets": ["db-02"]}, "targets", "db-02"),                             # no such target
    ({"scopes": ["web-read"], "targets": ["db-01"]}, "targets", "db-01"),     # web-read does not reach db-01
    ({"targets": ["web-01"], "commands": ["cat /etc/shadow"]}, "commands", "cat /etc/shadow"),
    ({"commands": ["uname -a"]}, "commands", "uname -a"),                     # no granted scope allows it anywhere
])
def test_asking_for_more_than_the_token_grants_is_refused_and_audited(bastion, idp, tmp_path, ask, check, named):
    b = bastion
    issued_before = len([r for r in b.audit() if r["action"] == "cert.issue" and r["outcome"] == "success"])
    with pytest.raises(Forbidden) as refused:
        obtain_certificate(b.issuance_url, idp.token("alice"), tmp_path / "agent", **ask)
    assert (refused.value.status, refused.value.error, refused.value.check) == (403, "not_granted", check)
    assert named in refused.value.message
    if check == "commands":
        assert "rule" in refused.value.message  # the bastion's own denial, with its rule
    record = b.await_audit(lambda r: r["action"] == "cert.issue" and r["outcome"] == "refused" and r["details"].get("code") == "not_granted"
                           and named in r["details"].get("reason", ""))
    assert record[-1]["details"]["rule"] == check
    assert len([r for r in b.audit() if r["action"] == "cert.issue" and r["outcome"] == "success"]) == issued_before, "nothing was issued"


async def test_a_one_shot_certificate_stays_spent_across_a_restart(bastion, idp, tmp_path):
    b = bastion
    cert = obtain_certificate(b.issuance_url, idp.token("alice"), tmp_path / "agent", targets=["web-01"], commands=["uname -sr"], max_sessions=1)
    first = await _run(b, cert, "web-01", "uname -sr")
    assert first.exit_status == 0, first.stderr_text
    second = await _run(b, cert, "web-01", "uname -sr")
    assert second.exit_status == 77 and second.denial.rule == "task-max-sessions"
    restart_serve(b)
    third = await _run(b, cert, "web-01", "uname -sr")
    assert third.exit_status == 77 and third.denial.code == "session-budget-spent", third.stderr_text


async def test_an_autogen_agent_with_a_task_certificate_runs_its_plan_and_is_refused_off_it(bastion, idp, tmp_path):
    b = bastion
    plan = TaskPlan(task_id="ticket-8", prompt=PROMPT, reason="kernel audit",
                    steps=[("web-01", "uname -sr"), ("web-01", "id -un")])
    credential = await task_credential(b.issuance_url, idp.token("alice"), tmp_path / "agent", plan,
                                       host="127.0.0.1", port=b.bastion_port, known_hosts=b.known_hosts)
    calls = [("c0", "uname -sr"), ("c1", "id -un"), ("c2", "cat /etc/hostname")]  # c2: the model strays from its plan
    turn = CreateResult(finish_reason="function_calls", usage=RequestUsage(prompt_tokens=0, completion_tokens=0), cached=False,
                        content=[FunctionCall(id=i, name="run_command", arguments=json.dumps({"target": "web-01", "command": c})) for i, c in calls])
    agent = AssistantAgent("ops_agent", model_client=ReplayChatCompletionClient([turn], model_info=MODEL_INFO),
                           tools=[credential.tool()], reflect_on_tool_use=False)
    result = await agent.run(task=PROMPT)
    out = {r.call_id: r.content for m in result.messages if isinstance(m, ToolCallExecutionEvent) for r in m.content}
    assert out["c0"].startswith("exit status: 0\nstdout:\nLinux"), out["c0"]
    assert b.login in out["c1"]
    assert "DENIED by Gatehouse" in out["c2"] and "rule: task-commands" in out["c2"]
    # What the model reads lets it recover: its plan, as the certificate covers it.
    assert "uname -sr" in out["c2"] and "id -un" in out["c2"] and "covers only these commands" in out["c2"]
    issued = b.await_audit(lambda r: r["action"] == "cert.issue" and str(r["details"].get("serial")) == str(credential.certificate.serial))
    assert issued[-1]["details"]["prompt"] == PROMPT
    assert json.loads(issued[-1]["details"]["task_commands"]) == ["uname -sr", "id -un"]
