"""Denial parsing: the exact text Sources/Policy/PolicySet.swift writes (PolicyDenial.message)."""
from gatehouse_client import DENIED_EXIT_STATUS, RunResult, parse_denial

# Verbatim from docs/policy.md §6.
DOC_EXAMPLE = (
    'gatehouse: denied: shell operator ";" (at byte 6). Scopes tried: ops-read. Accepted here: `uptime`.\n'
    'gatehouse-denial: {"accepted_patterns":["uptime"],"code":"command-refused","exit_status":77,'
    '"reason":"shell operator \\";\\" (at byte 6)","rule":"shell-operator","scopes_tried":["ops-read"],"unknown_scopes":[]}\n'
)


def test_machine_line_is_parsed():
    d = parse_denial(DOC_EXAMPLE, 77)
    assert d is not None
    assert d.reason == 'shell operator ";" (at byte 6)'
    assert d.rule == "shell-operator"
    assert d.code == "command-refused"
    assert d.scopes_tried == ["ops-read"]
    assert d.unknown_scopes == []
    assert d.accepted_patterns == ["uptime"]
    assert d.exit_status == 77
    assert d.sentence.startswith("gatehouse: denied: ")


def test_bytes_and_unknown_exit_status():
    d = parse_denial(DOC_EXAMPLE.encode(), None)
    assert d is not None and d.rule == "shell-operator"


def test_other_exit_status_is_not_a_denial():
    # A command that prints the words itself and exits 1 was not refused by Gatehouse.
    assert parse_denial(DOC_EXAMPLE, 1) is None
    assert parse_denial(DOC_EXAMPLE, 0) is None


def test_no_denial_text():
    assert parse_denial("some error\n", 77) is None
    assert parse_denial(b"", 77) is None


def test_human_sentence_fallback_several_scopes_and_patterns():
    text = ("gatehouse: denied: no pattern matches "
            "\"rm -rf /tmp/x\". Scopes tried: ops-read, web. Unknown scopes (grant nothing): ghost. "
            "Accepted here: `uname -sr`; `echo {words...}`; `journalctl -u {unit: nginx|postgres} -n {lines: 1..1000}`.\n")
    d = parse_denial(text, 77)
    assert d is not None
    assert d.reason == 'no pattern matches "rm -rf /tmp/x"'
    assert d.scopes_tried == ["ops-read", "web"]
    assert d.unknown_scopes == ["ghost"]
    assert d.accepted_patterns == ["uname -sr", "echo {words...}", "journalctl -u {unit: nginx|postgres} -n {lines: 1..1000}"]
    assert d.rule is None


def test_human_sentence_no_scope_reaches_target():
    d = parse_denial("gatehouse: denied: no scope grants exec on db-01. No scope of this certificate reaches this target.\n", 77)
    assert d is not None
    assert d.reason == "no scope grants exec on db-01"
    assert d.scopes_tried == []
    assert d.accepted_patterns == []


def test_reason_with_periods_and_hidden_patterns():
    d = parse_denial("gatehouse: denied: cat ./a.b is not allowed. Scopes tried: s1.\n", 77)
    assert d is not None
    assert d.reason == "cat ./a.b is not allowed"
    assert d.scopes_tried == ["s1"]
    assert d.accepted_patterns == []  # disclose_patterns: false


def test_broken_machine_line_falls_back_to_sentence():
    text = "gatehouse: denied: x. Scopes tried: a.\ngatehouse-denial: {not json\n"
    d = parse_denial(text, 77)
    assert d is not None and d.reason == "x" and d.scopes_tried == ["a"]


def test_unknown_sentence_shape_keeps_text():
    d = parse_denial("gatehouse: denied: something new\n", 77)
    assert d is not None and d.reason == "something new"


def test_run_result_describe_for_agents():
    d = parse_denial(DOC_EXAMPLE, 77)
    r = RunResult("web-01", "uptime; id", b"", DOC_EXAMPLE.encode(), DENIED_EXIT_STATUS, None, d)
    text = r.describe()
    assert r.denied and not r.ok
    assert "DENIED by Gatehouse" in text
    assert "rule: shell-operator" in text
    assert "uptime" in text and "ops-read" in text
    ok = RunResult("web-01", "uname", b"Linux\n", b"", 0)
    assert ok.describe() == "exit status: 0\nstdout:\nLinux\n"
    assert ok.stdout_text == "Linux\n" and ok.stderr_text == ""
