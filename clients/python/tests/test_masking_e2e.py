"""Secrets never reach the model: a real sshd prints files full of planted secrets through a live
`gatehouse serve`; the agent's clients (asyncssh, paramiko, an AutoGen agent's tool) receive
none of them. The model's context is what the model client was handed: a
ReplayChatCompletionClient (no LLM) that keeps every message it is given."""
from __future__ import annotations

import json
import secrets
import string
import subprocess

import paramiko
import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_core import FunctionCall
from autogen_core.models import CreateResult, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient

from gatehouse_client.autogen import gatehouse_tool
from gatehouse_client.ssh import run

from conftest import MODEL_INFO

pytestmark = pytest.mark.e2e

ALNUM = string.ascii_letters + string.digits


def _random(n: int, alphabet: str = ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def plant(path) -> dict[str, str]:
    """Writes a realistic .env with fresh fake secrets; returns them by kind."""
    planted = {
        "aws_key_id": "AKIA" + _random(16, string.ascii_uppercase + "234567"),
        "aws_secret": _random(40, ALNUM + "/+"),
        "github": "ghp_" + _random(36),
        "stripe": "sk_live_" + _random(24),
        "openai": "sk-proj-" + _random(48, ALNUM + "_-"),
        "db_password": _random(20),
        "url_password": _random(16),
    }
    path.write_text(
        "# .env for billing\n"
        "NODE_ENV=production\n"
        f"AWS_ACCESS_KEY_ID={planted['aws_key_id']}\n"
        f"AWS_SECRET_ACCESS_KEY={planted['aws_secret']}\n"
        f"GITHUB_TOKEN={planted['github']}\n"
        f"STRIPE_SECRET_KEY={planted['stripe']}\n"
        f"OPENAI_API_KEY={planted['openai']}\n"
        f"DB_PASSWORD={planted['db_password']}\n"
        f"DATABASE_URL=postgres://billing:{planted['url_password']}@db.internal:5432/billing\n"
        "PORT=8080\n"
    )
    return planted


def leaked(text: str, planted: dict[str, str]) -> list[str]:
    return [kind for kind, value in planted.items() if value in text]


class RecordingModel(ReplayChatCompletionClient):
    """A replay model that keeps every message list it is handed: the model's context."""

    def __init__(self, turns, **kw):
        super().__init__(turns, **kw)
        self.contexts: list = []

    async def create(self, messages, **kw):
        self.contexts.append(list(messages))
        return await super().create(messages, **kw)


async def test_asyncssh_reads_an_env_file_with_every_secret_masked(bastion):
    b = bastion
    planted = plant(b.directory / "www" / "billing.env")
    cert, key = b.issue(), b.agent_key
    r = await run("127.0.0.1", b.bastion_port, "web-01", f"cat {b.directory}/www/billing.env", key, cert_path=cert,
                  known_hosts=b.known_hosts, timeout=60)
    assert r.exit_status == 0, r.stderr_text
    assert leaked(r.stdout_text, planted) == []
    assert "GITHUB_TOKEN=[masked:github-token]" in r.stdout_text
    assert "NODE_ENV=production\n" in r.stdout_text and r.stdout_text.endswith("PORT=8080\n")
    # The session's end record counts masks by rule, never what was masked.
    ended = b.await_audit(lambda e: e["action"] == "session.end" and "github-token=1" in e["details"].get("masks", ""))
    assert not leaked(json.dumps(ended[-1]), planted)


def test_paramiko_reads_the_same_file_masked(bastion):
    b = bastion
    planted = plant(b.directory / "www" / "paramiko.env")
    cert, key = b.issue(key_id="agent:paramiko"), b.agent_key
    client = paramiko.SSHClient()
    client.load_host_keys(str(b.known_hosts))
    pkey = paramiko.Ed25519Key.from_private_key_file(str(key))
    pkey.load_certificate(str(cert))
    client.connect("127.0.0.1", port=b.bastion_port, username="web-01", pkey=pkey, look_for_keys=False, allow_agent=False, timeout=30)
    try:
        _, stdout, _ = client.exec_command(f"cat {b.directory}/www/paramiko.env", timeout=30)
        out = stdout.read().decode()
        assert stdout.channel.recv_exit_status() == 0
    finally:
        client.close()
    assert leaked(out, planted) == []
    assert "[masked:aws-access-key-id]" in out


async def test_an_autogen_agent_reads_an_env_and_the_model_never_sees_a_secret(bastion):
    b = bastion
    planted = plant(b.directory / "www" / ".env")
    call = CreateResult(finish_reason="function_calls",
                        content=[FunctionCall(id="call-0", name="run_command",
                                              arguments=json.dumps({"target": "web-01", "command": f"cat {b.directory}/www/.env"}))],
                        usage=RequestUsage(prompt_tokens=0, completion_tokens=0), cached=False)
    answer = CreateResult(finish_reason="stop", content="The app uses Postgres and Stripe.",
                          usage=RequestUsage(prompt_tokens=0, completion_tokens=0), cached=False)
    model = RecordingModel([call, answer], model_info=MODEL_INFO)
    agent = AssistantAgent("ops_agent", model_client=model, tools=[gatehouse_tool(b.connection(), targets=["web-01"])],
                           reflect_on_tool_use=True)
    result = await agent.run(task="Which services does the billing app on web-01 use? Read its .env.")
    assert len(model.contexts) == 2, "the model was asked again with the tool's result"
    context = "\n".join(str(m) for m in model.contexts[-1])
    assert "[masked:stripe-key]" in context and "[masked:url-credentials]" in context, context
    assert leaked(context, planted) == []
    assert leaked("\n".join(str(m) for m in result.messages), planted) == []


@pytest.fixture(scope="module")
def idp_for_metrics(tmp_path_factory):
    from conftest import start_provider, stop_provider

    p = start_provider(tmp_path_factory.mktemp("glewlwyd-masking"), ["alice=ops"])
    yield p
    stop_provider(p)


@pytest.fixture(scope="module")
def bastion_with_metrics(tmp_path_factory, idp_for_metrics):
    from conftest import issuance_section, start_bastion, stop_bastion

    b = start_bastion(tmp_path_factory.mktemp("gatehouse-masking-metrics"), issuance=issuance_section(idp_for_metrics, {"ops": ["ops"]}))
    yield b
    stop_bastion(b)


@pytest.mark.issuance
async def test_metrics_count_masks_by_rule(bastion_with_metrics):
    """`/metrics` (read as Prometheus reads it) counts masks by rule as sessions make them."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    b = bastion_with_metrics
    plant(b.directory / "www" / "metrics.env")
    cert, key = b.issue(), b.agent_key
    r = await run("127.0.0.1", b.bastion_port, "web-01", f"cat {b.directory}/www/metrics.env", key, cert_path=cert,
                  known_hosts=b.known_hosts, timeout=60)
    assert r.exit_status == 0, r.stderr_text
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(b.issuance_url + "/metrics", timeout=10) as response:
        families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    masks = {s.labels["rule"]: s.value for s in families["gatehouse_masks"].samples if s.name == "gatehouse_masks_total"}
    assert masks.get("github-token", 0) >= 1 and masks.get("aws-access-key-id", 0) >= 1, masks
