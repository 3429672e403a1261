#!/usr/bin/env python3
"""An AutoGen ops agent that reaches production hosts only through Gatehouse.

1. Trades the OIDC token of the human who started the job for a short-lived SSH certificate
   (POST /v1/certificates), with the task id and the prompt's SHA-256 as context, so every
   command the agent runs is tied back to this request in the audit log.
2. Gives an AssistantAgent one tool, `run_command(target, command)`: each call is one exec
   through the bastion, checked against the certificate's scopes before anything reaches the
   target. Denials come back as text the model can read (reason, rule, accepted commands).

    # with a real model (pip install "autogen-ext[openai]>=0.7,<0.8"; OPENAI_API_KEY set):
    ops_agent.py --issuance http://127.0.0.1:8022 --token-file token.jwt \\
        --bastion 127.0.0.1:2222 --known-hosts known_hosts --key ~/.ssh/gatehouse \\
        --target web-01 --task-id ticket-42 "Which kernel does web-01 run?"

    # without a model: a scripted (replayed) model asks for the commands given with --replay
    ops_agent.py … --replay "uname -sr" --replay "cat /etc/shadow" "Check web-01"

    # with a certificate already minted (gatehouse cert issue / gatehouse login): no --issuance
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import ToolCallExecutionEvent
from autogen_core import FunctionCall
from autogen_core.models import CreateResult, RequestUsage

from gatehouse_client import CertificateRequestError, make_context, obtain_certificate
from gatehouse_client.autogen import GatehouseConnection, gatehouse_tool

SYSTEM = (
    "You are an operations assistant. You can run single commands on production hosts with the "
    "run_command tool, through a bastion that only allows the commands your scopes grant. "
    "Shell syntax (pipes, ;, &&, $VAR, globs, redirections) is always refused. When a command is "
    "denied, read the accepted commands in the answer and use one of them instead. "
    "Reply with TERMINATE when done."
)


def model_client(args):
    if args.replay:
        from autogen_ext.models.replay import ReplayChatCompletionClient

        turn = CreateResult(
            finish_reason="function_calls", cached=False, usage=RequestUsage(prompt_tokens=0, completion_tokens=0),
            content=[FunctionCall(id=f"call-{i}", name="run_command", arguments=json.dumps({"target": args.target, "command": c}))
                     for i, c in enumerate(args.replay)])
        return ReplayChatCompletionClient([turn, "TERMINATE"], model_info={
            "vision": False, "function_calling": True, "json_output": False, "family": "unknown",
            "structured_output": False, "multiple_system_messages": True})
    from autogen_ext.models.openai import OpenAIChatCompletionClient  # needs autogen-ext[openai]

    return OpenAIChatCompletionClient(model=args.model)


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("task", help="what the agent should do")
    p.add_argument("--issuance", help="Gatehouse issuance URL, e.g. http://127.0.0.1:8022 (omit to use an existing certificate)")
    p.add_argument("--token-file")
    p.add_argument("--token-env", default="GATEHOUSE_OIDC_TOKEN")
    p.add_argument("--ca-file", help="CA bundle for an https issuance URL")
    p.add_argument("--ttl", type=int, default=600)
    p.add_argument("--task-id", default=None)
    p.add_argument("--bastion", required=True, help="HOST:PORT of gatehouse serve")
    p.add_argument("--known-hosts", required=True, help="the known_hosts lines gatehouse serve prints")
    p.add_argument("--key", required=True, help="the agent's private key (generated if missing)")
    p.add_argument("--target", required=True, help="the target the agent works on, e.g. web-01")
    p.add_argument("--model", default="gpt-4o-mini")
    p.add_argument("--replay", action="append", help="scripted model: ask for this command (repeatable)")
    args = p.parse_args()

    if args.issuance:
        token = Path(args.token_file).read_text().strip() if args.token_file else os.environ.get(args.token_env, "")
        if not token:
            p.error(f"no token: give --token-file or set {args.token_env}")
        try:
            cert = obtain_certificate(args.issuance, token, args.key, ttl=args.ttl, ca_file=args.ca_file,
                                      context=make_context(task_id=args.task_id, prompt=args.task, reason="ops_agent example"))
        except CertificateRequestError as e:
            print(f"certificate refused: {e.error} ({e.check}): {e.message}", file=sys.stderr)
            return 1
        print(f"certificate {cert.key_id} serial {cert.serial}: scopes {', '.join(cert.scopes)}, "
              f"valid {cert.valid_before - cert.valid_after}s", file=sys.stderr)

    host, _, port = args.bastion.rpartition(":")
    conn = GatehouseConnection(host, int(port), args.key, known_hosts=args.known_hosts)
    agent = AssistantAgent("ops_agent", model_client=model_client(args), tools=[gatehouse_tool(conn, targets=[args.target])],
                           system_message=SYSTEM, reflect_on_tool_use=False, max_tool_iterations=5)
    result = await agent.run(task=args.task)
    for m in result.messages:
        if isinstance(m, ToolCallExecutionEvent):
            for r in m.content:
                print(f"--- tool result ({r.call_id})\n{r.content}")
    print(f"--- final: {result.messages[-1].to_text()}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
