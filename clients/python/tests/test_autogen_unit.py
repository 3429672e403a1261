"""The AutoGen tool and code executor over a scripted connection (no network)."""
from __future__ import annotations

from autogen_core import CancellationToken
from autogen_core.code_executor import CodeBlock

from gatehouse_client import GatehouseConnectionError, RunResult, parse_denial
from gatehouse_client.autogen import GatehouseCodeExecutor, gatehouse_tool

DENIAL = ('gatehouse: denied: no allowed pattern matches "rm -rf /". Scopes tried: ops. Accepted here: `uname -sr`.\n'
          'gatehouse-denial: {"accepted_patterns":["uname -sr"],"code":"command-refused","exit_status":77,'
          '"reason":"no allowed pattern matches \\"rm -rf /\\"","rule":"no-matching-pattern","scopes_tried":["ops"],"unknown_scopes":[]}\n')


class FakeConnection:
    def __init__(self):
        self.calls = []

    async def run(self, target, command, input=None):
        self.calls.append((target, command, input))
        if command == "unreachable":
            raise GatehouseConnectionError("cannot connect to the bastion at 127.0.0.1:1: refused")
        if command.startswith("rm"):
            return RunResult(target, command, b"", DENIAL.encode(), 77, None, parse_denial(DENIAL, 77))
        if command == "false":
            return RunResult(target, command, b"", b"", 1)
        return RunResult(target, command, f"ran {command}\n".encode(), b"", 0)


async def test_tool_schema_and_results():
    conn = FakeConnection()
    tool = gatehouse_tool(conn, targets=["web-01"])
    assert tool.name == "run_command"
    params = tool.schema["parameters"]
    assert set(params["required"]) == {"target", "command"}
    assert "web-01" in tool.schema["description"]
    out = await tool.run_json({"target": "web-01", "command": "uname -sr"}, CancellationToken())
    assert tool.return_value_as_string(out) == "exit status: 0\nstdout:\nran uname -sr\n"
    denied = tool.return_value_as_string(await tool.run_json({"target": "web-01", "command": "rm -rf /"}, CancellationToken()))
    assert "DENIED by Gatehouse" in denied and "rule: no-matching-pattern" in denied and "  uname -sr" in denied
    other = await tool.run_json({"target": "db-01", "command": "uname -sr"}, CancellationToken())
    assert "not one of this tool's targets" in other
    err = await tool.run_json({"target": "web-01", "command": "unreachable"}, CancellationToken())
    assert err.startswith("ERROR: cannot connect")
    assert [c[1] for c in conn.calls] == ["uname -sr", "rm -rf /", "unreachable"]


async def test_executor_lines_mode_stops_at_first_failure():
    conn = FakeConnection()
    ex = GatehouseCodeExecutor(conn, "web-01")
    r = await ex.execute_code_blocks([CodeBlock("# comment\n\nuname -sr\n  false  \nid -un\n", "sh")], CancellationToken())
    assert r.exit_code == 1
    assert [c[1] for c in conn.calls] == ["uname -sr", "false"]
    r = await ex.execute_code_blocks([CodeBlock("rm -rf /\n", "bash"), CodeBlock("id -un", "sh")], CancellationToken())
    assert r.exit_code == 77 and "DENIED" in r.output and "id -un" not in [c[1] for c in conn.calls[2:]]


async def test_executor_stdin_mode_sends_the_block():
    conn = FakeConnection()
    ex = GatehouseCodeExecutor(conn, "web-01", mode="stdin", interpreter="bash -s")
    r = await ex.execute_code_blocks([CodeBlock("echo a | tr a b\n", "bash")], CancellationToken())
    assert r.exit_code == 0 and conn.calls == [("web-01", "bash -s", "echo a | tr a b\n")]


async def test_executor_refuses_other_languages():
    ex = GatehouseCodeExecutor(FakeConnection(), "web-01")
    r = await ex.execute_code_blocks([CodeBlock("print(1)", "python")], CancellationToken())
    assert r.exit_code == 1 and "unsupported language 'python'" in r.output
