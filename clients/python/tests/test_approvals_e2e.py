"""Approvals that fit an agent's clock, end to end with real parts: a live `gatehouse serve` in
front of a real sshd, certificates from glewlwyd ID tokens, decisions from another process
(`gatehouse approvals approve|deny`) and over HTTP with real tokens, a webhook receiver on
loopback. A command matching a scope's `review:` pattern is answered at once (exit 75) and
reaches the target only after approval, exactly once.

REQUIRES the OIDC issuance service in GATEHOUSE_BIN and Debian's glewlwyd."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.server
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import ToolCallExecutionEvent
from autogen_core import FunctionCall
from autogen_core.models import CreateResult, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient

from gatehouse_client import obtain_certificate, wait_for_approval
from gatehouse_client.autogen import GatehouseConnection, approval_wait_tool, gatehouse_tool
from gatehouse_client.ssh import run

from conftest import MODEL_INFO, free_port, issuance_section, restart_serve, start_bastion, start_provider, stop_bastion, stop_provider, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.issuance]

SECRET = "webhook-secret-for-the-approvals-test"



class Receiver(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Receiver.received.append((self.headers.get("X-Gatehouse-Signature", ""), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    p = start_provider(tmp_path_factory.mktemp("glewlwyd-approvals"), ["alice=ops", "bob=sre", "carol=visitors"])
    yield p
    stop_provider(p)


@pytest.fixture(scope="module")
def hook():
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield port
    server.shutdown()


@pytest.fixture(scope="module")
def bastion(tmp_path_factory, idp, hook):
    d = tmp_path_factory.mktemp("gatehouse-approvals")
    secret_file = d / "webhook.secret"
    secret_file.write_text(SECRET)
    section = issuance_section(idp, {"ops": ["deploy", "deploy-short"], "sre": ["web-read"], "visitors": ["web-read"]},
                               extra=f"approvals:\n  webhook_url: http://127.0.0.1:{hook}/hook\n  webhook_secret_file: {secret_file}\n")
    b = start_bastion(d, issuance=section)
    yield b
    stop_bastion(b)


def _cert(b, idp, who, tmp_path, name="agent", task=None):
    ctx = {"task_id": task} if task else None
    return obtain_certificate(b.issuance_url, idp.token(who), tmp_path / name, context=ctx)


async def _run(b, cert, command, target="web-01"):
    return await run("127.0.0.1", b.bastion_port, target, command, cert.key_path, cert_path=cert.certificate_path,
                     known_hosts=b.known_hosts, timeout=60)


async def _wait(b, cert, approval_id, timeout):
    return await wait_for_approval("127.0.0.1", b.bastion_port, approval_id, cert.key_path, cert_path=cert.certificate_path,
                                   known_hosts=b.known_hosts, timeout=timeout)


def _cli(b, *args):
    return subprocess.run([b.gatehouse, "approvals", *args, "--state", str(b.state)], capture_output=True, text=True, timeout=60)


def _target_logins(b) -> int:
    return (b.directory / "sshd.log").read_text(errors="replace").count("Accepted publickey")


def _http(b, method, path, token=None, body=None):
    req = urllib.request.Request(b.issuance_url + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


async def test_a_review_command_waits_for_a_person_and_then_runs_exactly_once(bastion, idp, tmp_path):
    b = bastion
    cert = obtain_certificate(b.issuance_url, idp.token("alice"), tmp_path / "agent",
                              context={"task_id": "change-1", "prompt": "Restart the web tier after the config change.", "reason": "change"})
    witness = b.directory / "www" / "restarted-once"
    logins = _target_logins(b)
    started = time.monotonic()
    first = await _run(b, cert, f"touch {witness}")
    answered_in = time.monotonic() - started
    assert first.exit_status == 75, first.stderr_text
    assert answered_in < 1.0, f"the pending answer took {answered_in:.3f}s"  # no key exchange to the target, no wait
    approval = first.approval
    assert approval is not None and (approval.status, approval.next, approval.retry_after) == ("pending", "wait", 5)
    assert approval.command == f"touch {witness}" and approval.target == "web-01"
    assert not witness.exists() and _target_logins(b) == logins, "nothing reached the target"
    again = await _run(b, cert, f"touch {witness}")
    assert again.exit_status == 75 and again.approval.approval_id == approval.approval_id, "a resend while pending asks nobody twice"

    shown = _cli(b, "show", approval.approval_id)
    assert shown.returncode == 0, shown.stderr
    for expected in ("oidc:alice", "change-1", "Restart the web tier after the config change.", f"touch {witness}", "deploy", "pending"):
        assert expected in shown.stdout, (expected, shown.stdout)
    pending = await _wait(b, cert, approval.approval_id, timeout=1)
    assert (pending.status, pending.next) == ("pending", "wait")

    # A person decides from another process while the agent waits: measured decision -> answer.
    waiter = asyncio.create_task(_wait(b, cert, approval.approval_id, timeout=30))
    await asyncio.sleep(0.5)
    decided_at = time.monotonic()
    approved = await asyncio.to_thread(_cli, b, "approve", approval.approval_id, "--approver", "local:oncall", "--reason", "planned change")
    assert approved.returncode == 0, approved.stderr
    answer = await waiter
    latency = time.monotonic() - decided_at
    print(f"decision -> waiting agent's answer: {latency:.3f}s (includes the CLI process)")
    assert (answer.status, answer.next, answer.decided_by) == ("approved", "resend", "local:oncall")
    assert latency < 5

    ran = await _run(b, cert, f"touch {witness}")
    assert ran.exit_status == 0, ran.stderr_text
    assert witness.exists()
    witness.unlink()
    twice = await _run(b, cert, f"touch {witness}")
    assert twice.exit_status == 77 and twice.denial.code == "approval-consumed", twice.stderr_text
    assert not witness.exists(), "released once"
    altered = await _run(b, cert, f"touch {witness}x")  # one byte different: another request, never the approved one
    assert altered.exit_status == 75 and altered.approval.approval_id != approval.approval_id
    assert not (b.directory / "www" / "restarted-oncex").exists()

    trail = [r for r in b.audit() if r["details"].get("approval_id") == approval.approval_id or approval.approval_id in r.get("object", "")]
    actions = {r["action"] for r in trail}
    assert {"approval.requested", "approval.approved", "approval.consumed"} <= actions, actions
    assert subprocess.run([b.gatehouse, "audit", "verify", "--state", str(b.state)], capture_output=True).returncode == 0


async def test_concurrent_resends_release_exactly_one(bastion, idp, tmp_path):
    b = bastion
    cert = _cert(b, idp, "alice", tmp_path, task="race")
    counter = b.directory / "www" / "race-count"
    first = await _run(b, cert, f"touch {counter}")
    assert _cli(b, "approve", first.approval.approval_id, "--approver", "local:oncall").returncode == 0
    results = await asyncio.gather(*[_run(b, cert, f"touch {counter}") for _ in range(6)])
    statuses = sorted(r.exit_status for r in results)
    assert statuses.count(0) == 1 and statuses.count(77) == 5, statuses


async def test_a_denial_reaches_the_waiting_agent_with_its_reason(bastion, idp, tmp_path):
    b = bastion
    cert = _cert(b, idp, "alice", tmp_path, task="deny-me")
    first = await _run(b, cert, f"touch {b.directory}/www/denied")
    waiter = asyncio.create_task(_wait(b, cert, first.approval.approval_id, timeout=30))
    await asyncio.sleep(0.3)
    assert (await asyncio.to_thread(_cli, b, "deny", first.approval.approval_id, "--approver", "local:oncall",
                                    "--reason", "not during the freeze")).returncode == 0
    answer = await waiter
    assert (answer.status, answer.next, answer.reason) == ("denied", "stop", "not during the freeze")
    resend = await _run(b, cert, f"touch {b.directory}/www/denied")
    assert resend.exit_status == 77 and resend.denial.code == "approval-denied"
    assert not (b.directory / "www" / "denied").exists()


async def test_four_eyes_and_approvers_over_http_with_real_tokens(bastion, idp, tmp_path):
    b = bastion
    cert = _cert(b, idp, "alice", tmp_path, task="http")
    first = await _run(b, cert, f"touch {b.directory}/www/http")
    path = f"/v1/approvals/{first.approval.approval_id}"
    assert _http(b, "POST", path + "/decision", None, {"decision": "approve"})[0] == 401
    status, body = _http(b, "POST", path + "/decision", idp.token("alice"), {"decision": "approve"})
    assert (status, body["code"]) == (403, "approval-self-approval"), body
    status, body = _http(b, "POST", path + "/decision", idp.token("carol"), {"decision": "approve"})
    assert (status, body["code"]) == (403, "approval-approver-not-listed"), body
    status, body = _http(b, "GET", path + "?wait=0", idp.token("alice"))
    assert (status, body["status"]) == (200, "pending")
    assert _http(b, "GET", path, idp.token("carol"))[0] == 404, "another identity learns nothing about the request"
    waiter = asyncio.create_task(_wait(b, cert, first.approval.approval_id, timeout=30))
    await asyncio.sleep(0.5)
    token = idp.token("bob")
    decided_at = time.monotonic()
    status, body = await asyncio.to_thread(_http, b, "POST", path + "/decision", token, {"decision": "approve", "reason": "looks right"})
    assert (status, body["status"], body["next"]) == (200, "approved", "resend"), body
    answer = await waiter
    print(f"HTTP decision -> waiting agent's answer: {time.monotonic() - decided_at:.3f}s")
    assert answer.next == "resend"
    ran = await _run(b, cert, f"touch {b.directory}/www/http")
    assert ran.exit_status == 0 and (b.directory / "www" / "http").exists()
    # /metrics counts approvals by outcome and times decisions (read as Prometheus reads it).
    from prometheus_client.parser import text_string_to_metric_families

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(b.issuance_url + "/metrics", timeout=10) as r:
        families = {f.name: f for f in text_string_to_metric_families(r.read().decode())}
    approvals = {s.labels.get("outcome"): s.value for s in families["gatehouse_approvals"].samples if s.name == "gatehouse_approvals_total"}
    assert approvals.get("approved", 0) >= 1 and approvals.get("requested", 0) >= 1, approvals
    assert any(f.startswith("gatehouse_approval_decision_seconds") for f in families), sorted(families)


async def test_an_approval_survives_a_restart_and_expires_on_time(bastion, idp, tmp_path):
    b = bastion
    cert = _cert(b, idp, "alice", tmp_path, task="restart")
    first = await _run(b, cert, f"touch {b.directory}/www/after-restart")
    assert _cli(b, "approve", first.approval.approval_id, "--approver", "local:oncall").returncode == 0
    restart_serve(b)
    ran = await _run(b, cert, f"touch {b.directory}/www/after-restart")
    assert ran.exit_status == 0, ran.stderr_text
    # deploy-short's approvals last 2 s: past that the approval is refused as expired.
    started = time.monotonic()
    short = await _run(b, cert, f"mkdir {b.directory}/www/short")
    assert short.exit_status == 75
    # deploy-short announces to its own webhook, a dead port: the agent's answer is not delayed.
    assert time.monotonic() - started < 1.0
    assert _cli(b, "approve", short.approval.approval_id, "--approver", "local:oncall").returncode == 0
    deadline = time.monotonic() + 15
    while (await _wait(b, cert, short.approval.approval_id, timeout=0)).status != "expired":
        assert time.monotonic() < deadline, "the 2 s approval never expired"
        await asyncio.sleep(0.2)
    late = await _run(b, cert, f"mkdir {b.directory}/www/short")
    assert not (b.directory / "www" / "short").exists(), "an expired approval releases nothing"
    assert (late.exit_status, late.denial.code if late.denial else None) == (77, "approval-expired"), late.stderr_text


def test_the_webhook_receives_a_signed_notification(bastion, hook):
    wait_for(lambda: Receiver.received, 15, "a webhook notification")
    # The scope with its own (dead) webhook never reached the global receiver.
    assert all(b"mkdir " not in body for _, body in Receiver.received)
    signature, body = Receiver.received[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, expected)
    assert json.loads(body)["approval_id"].startswith("apr-")


async def test_an_autogen_agent_waits_with_its_tool_and_resends_after_approval(bastion, idp, tmp_path):
    b = bastion
    cert = _cert(b, idp, "alice", tmp_path, task="autogen-change")
    conn = GatehouseConnection("127.0.0.1", b.bastion_port, cert.key_path, known_hosts=b.known_hosts, cert_path=cert.certificate_path, timeout=60)
    witness = b.directory / "www" / "agent-restart"
    command = f"touch {witness}"

    async def approve_when_asked():
        def pending_id():
            for line in _cli(b, "list", "--json", "--status", "pending").stdout.splitlines():
                record = json.loads(line)
                if record["command"] == command:
                    return record["approval_id"]
            return None
        approval_id = await asyncio.to_thread(wait_for, pending_id, 30, "the agent's request")
        await asyncio.to_thread(_cli, b, "approve", approval_id, "--approver", "local:oncall")

    def turn(calls):
        return CreateResult(finish_reason="function_calls", usage=RequestUsage(prompt_tokens=0, completion_tokens=0), cached=False,
                            content=[FunctionCall(id=i, name=n, arguments=json.dumps(a)) for i, n, a in calls])
    # The scripted model: run the change, wait on the id it was given, resend, report.
    first = turn([("c0", "run_command", {"target": "web-01", "command": command})])
    approver = asyncio.create_task(approve_when_asked())
    agent = AssistantAgent("ops", model_client=ReplayChatCompletionClient([first], model_info=MODEL_INFO),
                           tools=[gatehouse_tool(conn), approval_wait_tool(conn)], reflect_on_tool_use=False)
    result = await agent.run(task="restart the web tier")
    text = [r.content for m in result.messages if isinstance(m, ToolCallExecutionEvent) for r in m.content][0]
    assert text.startswith("PENDING APPROVAL apr-") and "wait_for_approval" in text, text
    approval_id = text.split()[2].rstrip(":")
    second = turn([("c1", "wait_for_approval", {"approval_id": approval_id})])
    third = turn([("c2", "run_command", {"target": "web-01", "command": command})])
    agent2 = AssistantAgent("ops", model_client=ReplayChatCompletionClient([second, third], model_info=MODEL_INFO),
                            tools=[gatehouse_tool(conn), approval_wait_tool(conn)], reflect_on_tool_use=False, max_tool_iterations=2)
    result = await agent2.run(task="continue")
    await approver
    out = {r.call_id: r.content for m in result.messages if isinstance(m, ToolCallExecutionEvent) for r in m.content}
    assert out["c1"].startswith("APPROVED"), out["c1"]
    assert out["c2"].startswith("exit status: 0"), out["c2"]
    assert witness.exists()


async def test_the_code_executor_waits_within_its_own_timeout(bastion, idp, tmp_path):
    from autogen_core import CancellationToken
    from autogen_core.code_executor import CodeBlock

    from gatehouse_client.autogen import GatehouseCodeExecutor

    b = bastion
    cert = _cert(b, idp, "alice", tmp_path, task="executor")
    conn = GatehouseConnection("127.0.0.1", b.bastion_port, cert.key_path, known_hosts=b.known_hosts, cert_path=cert.certificate_path, timeout=60)
    witness = b.directory / "www" / "executor-ran"
    block = [CodeBlock(code=f"touch {witness}", language="sh")]
    # Nobody decides: the executor reports pending cleanly when its own time runs out.
    started = time.monotonic()
    result = await GatehouseCodeExecutor(conn, "web-01", timeout=3).execute_code_blocks(block, CancellationToken())
    assert result.exit_code == 75 and "PENDING APPROVAL" in result.output, result.output
    assert time.monotonic() - started < 10 and not witness.exists()

    # A person approves while it waits: the identical command is resent and runs once.
    async def approve_pending():
        def pending():
            return next((json.loads(l)["approval_id"] for l in _cli(b, "list", "--json", "--status", "pending").stdout.splitlines()
                         if json.loads(l)["command"] == f"touch {witness}"), None)
        approval_id = await asyncio.to_thread(wait_for, pending, 30, "the executor's request")
        await asyncio.sleep(0.5)
        await asyncio.to_thread(_cli, b, "approve", approval_id, "--approver", "local:oncall")
    approver = asyncio.create_task(approve_pending())
    result = await GatehouseCodeExecutor(conn, "web-01", timeout=30).execute_code_blocks(block, CancellationToken())
    await approver
    assert result.exit_code == 0, result.output
    assert witness.exists()


async def test_an_approval_is_not_replayable_on_another_target_or_by_another_identity(bastion, idp, tmp_path):
    b = bastion
    cert = _cert(b, idp, "alice", tmp_path, name="a1", task="bound")
    command = f"touch {b.directory}/www/bound"
    first = await _run(b, cert, command)
    assert _cli(b, "approve", first.approval.approval_id, "--approver", "local:oncall").returncode == 0
    # Another task's certificate of the same person, and a certificate with no task: other identities.
    other_task = _cert(b, idp, "alice", tmp_path, name="a2", task="another-task")
    no_task = _cert(b, idp, "alice", tmp_path, name="a3")
    for stranger in (other_task, no_task):
        r = await _run(b, stranger, command)
        assert r.exit_status == 75 and r.approval.approval_id != first.approval.approval_id, r.stderr_text
    assert not (b.directory / "www" / "bound").exists()
    # The same task under a renewed certificate is the same identity: released, once.
    renewed = _cert(b, idp, "alice", tmp_path, name="a4", task="bound")
    ran = await _run(b, renewed, command)
    assert ran.exit_status == 0, ran.stderr_text
    again = await _run(b, cert, command)
    assert again.exit_status == 77 and again.denial.code == "approval-consumed"


async def test_a_released_command_counts_against_a_task_budget(bastion, idp, tmp_path):
    b = bastion
    witness = b.directory / "www" / "budgeted"
    cert = obtain_certificate(b.issuance_url, idp.token("alice"), tmp_path / "agent", context={"task_id": "budget"},
                              commands=["uname -sr", f"touch {witness}"], max_sessions=1)
    assert (await _run(b, cert, "uname -sr")).exit_status == 0
    pending = await _run(b, cert, f"touch {witness}")
    assert pending.exit_status == 75, "asking costs no session"
    assert _cli(b, "approve", pending.approval.approval_id, "--approver", "local:oncall").returncode == 0
    spent = await _run(b, cert, f"touch {witness}")
    assert spent.exit_status == 77 and spent.denial.code == "session-budget-spent", spent.stderr_text
    assert not witness.exists(), "an approval never widens a spent budget"


async def test_review_requests_are_bounded_per_identity_and_in_length(bastion, idp, tmp_path):
    b = bastion
    cert = _cert(b, idp, "alice", tmp_path, task="flood")
    long_path = f"{b.directory}/www/" + "a/" * 2100 + "x"
    too_long = await _run(b, cert, f"touch {long_path}")
    assert too_long.exit_status == 77 and too_long.denial.code == "approval-command-too-long", too_long.stderr_text
    for i in range(16):
        r = await _run(b, cert, f"touch {b.directory}/www/flood-{i}")
        assert r.exit_status == 75, r.stderr_text
    again = await _run(b, cert, f"touch {b.directory}/www/flood-0")
    assert again.exit_status == 75, "a resend of a waiting request is still answered"
    more = await _run(b, cert, f"touch {b.directory}/www/flood-16")
    assert more.exit_status == 77 and more.denial.code == "approval-too-many-pending", more.stderr_text
