#!/usr/bin/env python3
"""Markdown from bench/bastion/run.sh's results.json.

  report.py RESULTS table KEY BASELINE_LABEL      rows of one interleaved timing, ratio to the baseline
  report.py RESULTS table-of LABEL=KEY ...        one row per key (each a single summary)
  report.py RESULTS cost KEY                      Gatehouse's wall time against ProxyJump and direct
  report.py RESULTS idle | burst
"""
import json
import sys


def ms(x):
    return f"{x * 1000:.1f} ms" if x < 1 else f"{x:.3f} s"


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


def row(label, s, base=None):
    ratio = f"{s['median'] / base['median']:.2f}×" if base else "—"
    failed = f" ({len(s['failed'])} of {s['n'] + len(s['failed'])} runs failed, not timed)" if s.get("failed") else ""
    return f"| {label}{failed} | {ms(s['median'])} | {ms(s['p90'])} | {ms(s['min'])} | {ms(s['max'])} | {ratio} |"


HEAD = "| path | median | p90 | min | max | median vs first row |\n|---|---|---|---|---|---|"


def main():
    data = json.load(open(sys.argv[1]))
    mode = sys.argv[2]
    if mode == "table":
        d, base = data[sys.argv[3]], sys.argv[4]
        print(HEAD)
        for label, s in d.items():
            print(row(label, s, d[base]))
    elif mode == "table-of":
        pairs = [a.split("=", 1) for a in sys.argv[3:]]
        print(HEAD)
        base = data[pairs[0][1]]
        for label, key in pairs:
            print(row(label, data[key], base))
    elif mode == "cost":
        d = data[sys.argv[3]]
        g, j, dr = d["Gatehouse"]["median"], d["ProxyJump (ssh -W via stock sshd)"]["median"], d["direct ssh"]["median"]
        print()
        print(f"Recording cost, Gatehouse (every byte recorded) against ProxyJump (nothing recorded), medians: "
              f"**{(g / j - 1) * 100:+.1f}%** wall ({g:.3f} s against {j:.3f} s); against direct: {(g / dr - 1) * 100:+.1f}%."
              f" Throughput: Gatehouse {data_mib(d) / g:.0f} MiB/s, ProxyJump {data_mib(d) / j:.0f} MiB/s, direct {data_mib(d) / dr:.0f} MiB/s.")
    elif mode == "idle":
        r = data["idle"]
        n = r["sessions_open"]
        print(f"| | VmRSS | RssAnon | threads | fds |\n|---|---|---|---|---|")
        for label, st in (("before (after one warm-up session)", r["before"]), (f"with {n} sessions open", r["with_all"]),
                          ("after all closed", r["after"])):
            print(f"| {label} | {mib(st['VmRSS'])} | {mib(st['RssAnon'])} | {st['Threads']} | {st['fds']} |")
        print()
        per = (r["with_all"]["VmRSS"] - r["before"]["VmRSS"]) / max(n, 1)
        print(f"Sessions open at once: **{n}** (client side: exec answered) in {r['with_all'].get('connections')} TCP connections"
              f" to the bastion; opened in {r['open_s']} s{' (TIMED OUT)' if r['open_timed_out'] else ''}."
              f" **{per:.0f} KiB of RSS per session** (delta / {n}; includes each connection's share and its target connection)."
              + (f" Errors: {r['errors']}" if r["errors"] else ""))
        if r["after_quiet"]["timed_out"]:
            print(f"\nAfter closing, not quiet within the deadline: {r['after_quiet']}")
    elif mode == "burst":
        r = data["burst"]
        base = r["baseline"]["VmRSS"]
        print(f"Fresh process: {mib(r['fresh']['VmRSS'])}, {r['fresh']['Threads']} threads. Idle baseline (after one warm-up session, "
              f"trimmed): **{mib(base)}** (RssAnon {mib(r['baseline']['RssAnon'])}), {r['baseline']['Threads']} threads, {r['baseline']['fds']} fds.")
        print()
        print("| burst | completed | wall | peak RSS | peak threads | connections gone after | RSS after (settled) | vs baseline | RssAnon after | threads after |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for i, b in enumerate(r["bursts"], 1):
            a = b["after"]
            quiet = f"{b['quiet']['quiet_after_s']} s" + (" (TIMED OUT)" if b["quiet"]["timed_out"] else "")
            print(f"| {i} | {b['completed']} / {b['of']} | {b['wall_s']} s | {mib(b['peak_rss'])} | {b['peak_threads']} | {quiet} | "
                  f"{mib(a['VmRSS'])} | {(a['VmRSS'] / base - 1) * 100:+.1f}% | {mib(a['RssAnon'])} | {a['Threads']} |")
        errs = {}
        for b in r["bursts"]:
            for k, v in b["errors"].items():
                errs[k] = errs.get(k, 0) + v
        if errs:
            print()
            print("Failures seen by the clients: " + "; ".join(f"{v} × `{k}`" for k, v in errs.items()))
        last = r["bursts"][-1]["after"]["VmRSS"] if r["bursts"] else base
        print()
        print(f"After {len(r['bursts'])} bursts: RSS {mib(last)} against the {mib(base)} baseline, **{(last / base - 1) * 100:+.1f}%** (goal: within 10%).")
    elif mode == "audit":
        counts = {}
        for line in open(sys.argv[3]):
            e = json.loads(line)
            d = e.get("details", {})
            if e["action"] in ("ca.init", "cert.issue", "server.start", "server.stop"):
                continue
            why = d.get("reason") or d.get("code") or d.get("counts") or ""
            key = f"{e['action']} {e['outcome']}" + (f" ({why})" if why and e["outcome"] != "success" or e["action"] == "ssh.admission" else "")
            counts[key] = counts.get(key, 0) + 1
        print()
        print("Audit records of this process: " + "; ".join(f"{k}: {v}" for k, v in sorted(counts.items())) + ".")
    else:
        sys.exit(f"unknown mode {mode}")


def data_mib(d):
    import os
    return int(os.environ.get("BULK_MIB", "256"))


if __name__ == "__main__":
    main()
