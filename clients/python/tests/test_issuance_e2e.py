"""The whole path: an OIDC ID token from glewlwyd (scripts/oidc/glewlwyd_provider.py) ->
`obtain_certificate` (POST /v1/certificates on gatehouse serve's issuance listener) -> an AutoGen
agent runs an allowed and a denied command through the bastion -> the audit log ties both
commands to the token's subject and the request context.

REQUIRES the OIDC issuance service (Sources/Issuance) in GATEHOUSE_BIN and
Debian's glewlwyd. scripts/python-tests.sh refuses a binary without the issuance service;
run directly against such a binary these tests fail."""
from __future__ import annotations

import json

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import ToolCallExecutionEvent
from autogen_core import FunctionCall
from autogen_core.models import CreateResult, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient

from gatehouse_client import Forbidden, InvalidToken, make_context, obtain_certificate
from gatehouse_client.autogen import GatehouseConnection, gatehouse_tool

from conftest import MODEL_INFO, issuance_section, start_bastion, start_provider, stop_bastion, stop_provider

pytestmark = [pytest.mark.e2e, pytest.mark.issuance]


PROMPT = "Check which kernel web-01 runs, then read the password file."


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    p = start_provider(tmp_path_factory.mktemp("glewlwyd"), ["alice=ops,dev", "mallory=visitors"])
    yield p
    stop_provider(p)


@pytest.fixture(scope="module")
def issuing_bastion(tmp_path_factory, idp):
    section = issuance_section(idp, {"ops": ["ops"], "dev": ["web-read"]})
    b = start_bastion(tmp_path_factory.mktemp("gatehouse-issuance"), issuance=section)
    yield b
    stop_bastion(b)


def _claims(token: str) -> dict:
    import base64

    p = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


async def test_token_to_certificate_to_agent_run_audited(issuing_bastion, idp, tmp_path):
    b = issuing_bastion
    token = idp.token("alice", "id")
    claims = _claims(token)
    assert claims["groups"] == ["ops", "dev"] and claims["preferred_username"] == "alice"
    key = tmp_path / "agent"
    ctx = make_context(task_id="ticket-42", prompt=PROMPT, reason="kernel check")
    cert = obtain_certificate(b.issuance_url, token, key, ttl=600, context=ctx)
    assert cert.key_id == "oidc:alice" and cert.principals == ["alice"]
    assert set(cert.scopes) == {"ops", "web-read"}
    assert 0 < cert.valid_before - cert.valid_after <= 600 + 180
    assert json.loads(cert.context)["task_id"] == "ticket-42"
    assert json.loads(cert.context)["prompt_sha256"] == ctx["prompt_sha256"]
    assert cert.certificate_path.read_text().startswith("ssh-ed25519-cert-v01@openssh.com ")

    conn = GatehouseConnection("127.0.0.1", b.bastion_port, key, known_hosts=b.known_hosts, timeout=60)
    turn = CreateResult(finish_reason="function_calls", usage=RequestUsage(prompt_tokens=0, completion_tokens=0), cached=False,
                        content=[FunctionCall(id="c0", name="run_command", arguments=json.dumps({"target": "web-01", "command": "uname -sr"})),
                                 FunctionCall(id="c1", name="run_command", arguments=json.dumps({"target": "web-01", "command": "cat /etc/shadow"}))])
    agent = AssistantAgent("ops_agent", model_client=ReplayChatCompletionClient([turn], model_info=MODEL_INFO),
                           tools=[gatehouse_tool(conn)], reflect_on_tool_use=False)
    result = await agent.run(task=PROMPT)
    res = {r.call_id: r.content for m in result.messages if isinstance(m, ToolCallExecutionEvent) for r in m.content}
    assert res["c0"].startswith("exit status: 0\nstdout:\nLinux")
    assert "DENIED by Gatehouse" in res["c1"]

    # The audit log: the issuance names the token's subject and the context; both commands
    # are decided under that certificate (serial, key id) and carry the same context.
    issued = b.await_audit(lambda r: r["action"] == "cert.issue" and r["outcome"] == "success"
                           and r["details"].get("key_id") == "oidc:alice")
    d = issued[-1]["details"]
    assert issued[-1]["actor"] == f"oidc:{claims['sub']}"
    assert d.get("sub") == claims["sub"] and d.get("iss") == idp.info["issuer"]
    assert str(d.get("serial")) == str(cert.serial)
    assert "ticket-42" in json.dumps(d)
    allowed = b.await_audit(lambda r: r["action"] == "policy.decision" and r["outcome"] == "success"
                            and r["details"].get("request") == "uname -sr" and str(r["details"].get("serial")) == str(cert.serial))
    denied = b.await_audit(lambda r: r["action"] == "policy.decision" and r["outcome"] == "refused"
                           and r["details"].get("request") == "cat /etc/shadow" and str(r["details"].get("serial")) == str(cert.serial))
    for rec in (allowed[-1], denied[-1]):
        assert rec["details"]["key_id"] == "oidc:alice"
    logins = b.await_audit(lambda r: r["action"] == "ssh.login" and r["outcome"] == "success"
                           and str(r["details"].get("serial")) == str(cert.serial))
    assert all("ticket-42" in r["details"].get("context", "") for r in logins)
    assert len(logins) >= 2


async def test_refusals_are_typed(issuing_bastion, idp, tmp_path):
    b = issuing_bastion
    with pytest.raises(InvalidToken) as bad:
        obtain_certificate(b.issuance_url, "not.a.token", tmp_path / "k1")
    assert bad.value.status == 401 and bad.value.error == "malformed_token"
    token = idp.token("mallory", "id")  # valid token, groups map to no scope
    with pytest.raises(Forbidden) as none:
        obtain_certificate(b.issuance_url, token, tmp_path / "k2")
    assert (none.value.status, none.value.error, none.value.check) == (403, "no_scopes", "scopes")
    access = idp.token("alice", "access")  # an access token where an ID token is configured
    with pytest.raises(InvalidToken) as wrong:
        obtain_certificate(b.issuance_url, access, tmp_path / "k3")
    assert wrong.value.error in ("wrong_token_type", "bad_audience")
