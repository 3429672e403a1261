#!/usr/bin/env python3
"""Replicas benchmark (issue 16): issuances/s and sessions/s with 1 and 3 replicas, store local
and postgres, behind haproxy (TCP); CPU per operation from /proc; database round trips per
operation; login latency with store local vs postgres, and OpenSSH's sshd side by side.

  bench/replicas/bench.py --gatehouse BIN [--duration S] [--json OUT] [--configs local:1,postgres:1,...]

The parts are the test harness's (clients/python/tests/replicas.py): PostgreSQL 15 from Debian
(a fresh cluster per configuration), haproxy from Debian, OpenSSH's sshd as the target, an OIDC
issuer whose Ed25519 key this process holds. Load: wrk (issuance, one distinct token per
request, `jti_replay: true`) and OpenSSH's `ssh` client (sessions: `ssh web-01@haproxy true`).
A configuration the binary cannot run (e.g. `kind: postgres` before `serve` keeps its state
in the database) is reported with the binary's own error and the others still run.

What is counted:
- CPU per operation: utime+stime deltas from /proc/PID/stat of the gatehouse replicas, of
  the postmaster and every backend (live ones, plus the postmaster's cutime/cstime for the
  ones that ended), of haproxy and of the target sshd with its children. The load generators
  (wrk, ssh, this script) are not counted, but they run on the same 2 cores.
- Database round trips per operation: statements the server logged with `log_statement =
  all` (switched on with ALTER SYSTEM + pg_reload_conf for a short sequential counting phase,
  off for the throughput runs), minus the background rate measured just before on an idle
  cluster. postgres-nio sends each statement as one Parse/Bind/Execute/Sync exchange, so one
  logged statement is one round trip. Also `pg_stat_database.xact_commit` deltas (transactions
  per operation) for the throughput runs themselves.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "clients" / "python" / "tests"))
import replicas as R  # noqa: E402


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, int(round(p * len(s))) - 1))]


class CPU:
    """CPU seconds of the server-side processes, by role."""

    def __init__(self, c: R.Cluster):
        self.c = c

    def sample(self) -> dict[str, float]:
        c = self.c
        out = {"gatehouse": sum(R.proc_cpu_seconds(r.pid) for r in c.replicas if r.alive()),
               "haproxy": R.proc_cpu_seconds(c.haproxy.proc.pid),
               "sshd": R.tree_cpu_seconds(c.target.proc.pid)}
        if c.postgres is not None:
            out["postgres"] = R.tree_cpu_seconds(c.postgres.proc.pid)
        return out

    @staticmethod
    def delta(a: dict, b: dict) -> dict:
        return {k: b[k] - a[k] for k in a}


def xact_commit(c: R.Cluster) -> int:
    if c.postgres is None:
        return 0
    return int(c.postgres.psql("SELECT xact_commit FROM pg_stat_database WHERE datname = 'gatehouse'"))


def issued_total(c: R.Cluster) -> int:
    n = 0
    for r in c.replicas:
        status, body = R.http_get(r.issuance_port, "/metrics")
        for line in body.decode(errors="replace").splitlines():
            if line.startswith("gatehouse_certificates_issued_total"):
                n += int(float(line.split()[-1]))
    return n


# ---------------------------------------------------------------- issuance

def issuance_run(c: R.Cluster, work: Path, duration: int, threads: int = 2, connections: int = 32) -> dict:
    key = work / "issue-key"
    if not key.exists():
        R.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])
    public = " ".join(Path(f"{key}.pub").read_text().split()[:2])
    count = 5000 * duration + 2000  # above any rate this machine reaches: no token is sent twice
    tokens = work / "tokens.txt"
    with open(tokens, "w") as f:
        for i in range(count):
            f.write(c.issuer.token(f"bench-{i % 1000}") + "\n")
    # One request first: fail loudly on a wrong setup instead of benchmarking refusals.
    status, body = R.post_certificate(c.haproxy.issuance_port, c.issuer.token("bench-probe"), public)
    if status != 200:
        raise R.HarnessError(f"issuance probe answered {status}: {body}")
    cpu = CPU(c)
    a, x0, n0 = cpu.sample(), xact_commit(c), issued_total(c)
    env = dict(os.environ, TOKENS=str(tokens), KEY=public, NTHREADS=str(threads))
    r = R.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", REPO / "bench/replicas/post.lua",
               f"http://127.0.0.1:{c.haproxy.issuance_port}/v1/certificates"], env=env, timeout=duration + 120)
    b, x1, n1 = cpu.sample(), xact_commit(c), issued_total(c)
    out = r.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = {p: re.search(rf"^\s+{p}%\s+(\S+)", out, re.M).group(1) for p in ("50", "90", "99")}
    d = CPU.delta(a, b)
    n = n1 - n0
    return {"per_second": rps, "issued": n, "non_2xx": int(non2xx.group(1)) if non2xx else 0, "latency": lat,
            "cpu_ms_per_op": {k: 1000 * v / max(n, 1) for k, v in d.items()},
            "xact_per_op": (x1 - x0) / max(n, 1) if c.postgres else None, "wrk": out}


# ---------------------------------------------------------------- sessions (ssh exec true)

def ssh_argv(key: Path, known_hosts: Path, user: str, port: int) -> list[str]:
    return ["ssh", "-F", "/dev/null", "-i", str(key), "-o", f"CertificateFile={key}-cert.pub", "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-o", "LogLevel=ERROR", "-p", str(port), f"{user}@127.0.0.1", "true"]


async def ssh_loop(argv: list[str], duration: float, concurrency: int) -> tuple[int, int, list[float], str]:
    ok = failed = 0
    latencies: list[float] = []
    last_error = ""
    end = time.monotonic() + duration

    async def one_worker():
        nonlocal ok, failed, last_error
        while time.monotonic() < end:
            t = time.perf_counter()
            p = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                                                     stderr=asyncio.subprocess.PIPE)
            _, err = await p.communicate()
            if p.returncode == 0:
                ok += 1
                latencies.append(time.perf_counter() - t)
            else:
                failed += 1
                last_error = err.decode(errors="replace")[-300:]
                await asyncio.sleep(0.05)

    await asyncio.gather(*(one_worker() for _ in range(concurrency)))
    return ok, failed, latencies, last_error


def sessions_run(c: R.Cluster, argv: list[str], duration: int, concurrency: int = 8, include_db: bool = True) -> dict:
    cpu = CPU(c)
    a, x0 = cpu.sample(), xact_commit(c)
    t = time.monotonic()
    ok, failed, lat, err = asyncio.run(ssh_loop(argv, duration, concurrency))
    elapsed = time.monotonic() - t
    b, x1 = cpu.sample(), xact_commit(c)
    d = CPU.delta(a, b)
    return {"per_second": ok / elapsed, "sessions": ok, "failed": failed, "last_error": err,
            "latency_ms": {"p50": 1000 * pct(lat, 0.5), "p95": 1000 * pct(lat, 0.95)} if lat else None,
            "cpu_ms_per_op": {k: 1000 * v / max(ok, 1) for k, v in d.items()},
            "xact_per_op": (x1 - x0) / max(ok, 1) if (c.postgres and include_db) else None}


# ---------------------------------------------------------------- round trips (postgres only)

STATEMENT = re.compile(r"LOG:  (statement|execute [^:]*):")


def statements_logged(c: R.Cluster, since: int, kinds: dict | None = None) -> int:
    """Statements logged since byte `since`; `kinds` counts them by their first words."""
    n = 0
    with open(c.postgres.log, "rb") as f:
        f.seek(since)
        for line in f.read().decode(errors="replace").splitlines():
            m = STATEMENT.search(line)
            if m:
                n += 1
                if kinds is not None:
                    text = " ".join(line[m.end():].split()[:4])[:48]
                    kinds[text] = kinds.get(text, 0) + 1
    return n


def round_trips(c: R.Cluster, work: Path, issuances: int = 200, sessions: int = 40) -> dict:
    import asyncssh
    import http.client

    pg = c.postgres
    pg.psql("ALTER SYSTEM SET log_statement = 'all'")
    pg.psql("SELECT pg_reload_conf()")
    time.sleep(1.0)
    try:
        # Background: what the replicas ask the database with nothing happening (the
        # periodic re-reads), per second, over 3 s.
        off = pg.log.stat().st_size
        time.sleep(3.0)
        background = statements_logged(c, off) / 3.0

        key = work / "rt-key"
        if not key.exists():
            R.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])
        public = " ".join(Path(f"{key}.pub").read_text().split()[:2])
        conn = http.client.HTTPConnection("127.0.0.1", c.replicas[0].issuance_port, timeout=30)
        tokens = [c.issuer.token(f"rt-{i}") for i in range(issuances)]
        off, t = pg.log.stat().st_size, time.monotonic()
        for tok in tokens:
            status, body = R.post_certificate(0, tok, public, conn=conn)
            assert status == 200, body
        time.sleep(0.3)  # let the server flush its log lines
        elapsed = time.monotonic() - t
        issuance_kinds: dict = {}
        per_issuance = (statements_logged(c, off, issuance_kinds) - background * elapsed) / issuances
        Path(f"{key}-cert.pub").write_text(body["certificate"] + "\n")

        async def logins():
            keys = [(asyncssh.read_private_key(str(key)), asyncssh.read_certificate(f"{key}-cert.pub"))]
            for _ in range(sessions):
                async with asyncssh.connect("127.0.0.1", c.replicas[0].ssh_port, username="web-01", client_keys=keys,
                                            known_hosts=str(c.known_hosts)) as s:
                    await s.run("true", check=True)

        off, t = pg.log.stat().st_size, time.monotonic()
        asyncio.run(logins())
        time.sleep(0.5)  # the session's end is audited after the client has gone
        elapsed = time.monotonic() - t
        session_kinds: dict = {}
        per_session = (statements_logged(c, off, session_kinds) - background * elapsed) / sessions

        def top(kinds: dict, n: int) -> dict:
            return {k: round(v / n, 2) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])[:10]}
        return {"background_per_s": background, "per_issuance": per_issuance, "per_session": per_session,
                "issuances": issuances, "sessions": sessions,
                "issuance_statements": top(issuance_kinds, issuances), "session_statements": top(session_kinds, sessions)}
    finally:
        pg.psql("ALTER SYSTEM RESET log_statement")
        pg.psql("SELECT pg_reload_conf()")


def sshd_client(c: R.Cluster, d: Path) -> tuple[Path, Path]:
    """OpenSSH's sshd (the cluster's target), directly: a user certificate from a CA of our
    own that the target trusts; returns (key, known_hosts)."""
    ca = d / "bench_user_ca"
    R.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", ca])
    skey = d / "sshd-key"
    R.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", skey])
    R.run(["ssh-keygen", "-q", "-s", ca, "-I", "bench", "-n", c.target.login, "-V", "-5m:+1h", f"{skey}.pub"])
    c.target.trust(c.target_ca_keys() | {" ".join(Path(f"{ca}.pub").read_text().split()[:2])})
    kh = d / "sshd_known_hosts"
    kh.write_text(f"[127.0.0.1]:{c.target.port} {c.target.host_key}\n")
    return skey, kh


def latency_interleaved(gh: str, work: Path, n: int) -> dict:
    """The database's cost on a login: one replica with store local and one with store
    postgres (each its own target), and OpenSSH's sshd, logged into in turn (the order
    rotated each round) so that whatever else loads the machine loads all three alike.
    `login`: TCP connect to authenticated (asyncssh.connect returning); `login + true`: that,
    `true` run on the target through the bastion, and the connection closed."""
    import asyncssh

    local = R.start_cluster(work / "lat-local", gh, replicas=1, store="local", log_level="error")
    try:
        pg = R.start_cluster(work / "lat-postgres", gh, replicas=1, store="postgres", log_level="error")
    except Exception:
        local.stop()
        raise
    try:
        paths = {}
        for name, c in (("local", local), ("postgres", pg)):
            key = c.directory / "lat-key"
            c.issue(key, ttl=3600)
            paths[name] = (c.replicas[0].ssh_port, "web-01", key, c.known_hosts)
        skey, kh = sshd_client(local, local.directory)
        paths["sshd"] = (local.target.port, local.target.login, skey, kh)

        async def go():
            keys = {k: [(asyncssh.read_private_key(str(v[2])), asyncssh.read_certificate(f"{v[2]}-cert.pub"))] for k, v in paths.items()}
            samples = {k: {"login": [], "total": []} for k in paths}
            names = list(paths)
            for i in range(n + 5):
                for name in names[i % 3:] + names[:i % 3]:
                    port, user, _, known = paths[name]
                    t0 = time.perf_counter()
                    conn = await asyncssh.connect("127.0.0.1", port, username=user, client_keys=keys[name], known_hosts=str(known))
                    t1 = time.perf_counter()
                    await conn.run("true", check=True)
                    conn.close()
                    await conn.wait_closed()
                    t2 = time.perf_counter()
                    if i >= 5:
                        samples[name]["login"].append(1000 * (t1 - t0))
                        samples[name]["total"].append(1000 * (t2 - t0))
            return samples

        samples = asyncio.run(go())
        out = {"n": n}
        for name, v in samples.items():
            out[name] = {k: {"p50": statistics.median(x), "p95": pct(x, 0.95)} for k, x in v.items()}
        for k in ("login", "total"):
            diffs = [b - a for a, b in zip(samples["local"][k], samples["postgres"][k])]
            out[f"postgres_minus_local_{k}"] = {"p50": statistics.median(diffs), "p95": pct(diffs, 0.95)}
        return out
    finally:
        pg.stop()
        local.stop()


# ---------------------------------------------------------------- one configuration

def bench_config(gh: str, store: str, n: int, duration: int, work: Path, with_sshd: bool) -> dict:
    d = work / f"{store}-{n}"
    res: dict = {"store": store, "replicas": n}
    try:
        c = R.start_cluster(d, gh, replicas=n, store=store, log_level="error")
    except Exception as e:  # the binary cannot run this configuration: say why, go on
        res["error"] = str(e).strip().splitlines()[-1][:400]
        return res
    try:
        res["issuance"] = issuance_run(c, d, duration)
        key = d / "sess-key"
        c.issue(key, ttl=3600)
        res["sessions"] = sessions_run(c, ssh_argv(key, c.known_hosts, "web-01", c.haproxy.ssh_port), duration)
        if store == "postgres":
            res["round_trips"] = round_trips(c, d)
        if with_sshd:
            skey, kh = sshd_client(c, d)
            res["sshd_sessions"] = sessions_run(c, ssh_argv(skey, kh, c.target.login, c.target.port), duration, include_db=False)
    except Exception as e:
        res["error"] = f"{type(e).__name__}: {str(e).strip()[:600]}"
        traceback.print_exc()
    finally:
        c.stop()
        shutil.rmtree(d, ignore_errors=True)
    return res


def fmt(x, spec=".0f", none="—"):
    return none if x is None else format(x, spec)


def report(results: list[dict]) -> str:
    lines = ["| store | replicas | issuances/s | issuance p50 / p99 | CPU ms per issuance (gatehouse + postgres + haproxy) | xact/issuance | sessions/s (`ssh … true`) | session p50 / p95 | CPU ms per session (gatehouse + postgres + haproxy + target sshd) | xact/session |",
             "|---|---:|---:|---|---|---:|---:|---|---|---:|"]
    for r in results:
        if "store" not in r:
            continue
        if "issuance" not in r:
            lines.append(f"| {r['store']} | {r['replicas']} | failed: {r.get('error', '?')} | | | | | | | |")
            continue
        i, s = r["issuance"], r.get("sessions", {})
        ci, cs = i["cpu_ms_per_op"], s.get("cpu_ms_per_op", {})
        cpu_i = f"{ci['gatehouse']:.2f} + {ci.get('postgres', 0):.2f} + {ci['haproxy']:.2f}"
        cpu_s = f"{cs.get('gatehouse', 0):.1f} + {cs.get('postgres', 0):.1f} + {cs.get('haproxy', 0):.1f} + {cs.get('sshd', 0):.1f}" if cs else "—"
        lat_s = f"{s['latency_ms']['p50']:.0f} / {s['latency_ms']['p95']:.0f} ms" if s.get("latency_ms") else "—"
        lines.append(f"| {r['store']} | {r['replicas']} | {i['per_second']:.0f}{' (' + str(i['non_2xx']) + ' non-2xx)' if i['non_2xx'] else ''} | "
                     f"{i['latency']['50']} / {i['latency']['99']} | {cpu_i} | {fmt(i['xact_per_op'], '.2f')} | "
                     f"{fmt(s.get('per_second'), '.1f')}{' (' + str(s['failed']) + ' failed)' if s.get('failed') else ''} | {lat_s} | {cpu_s} | {fmt(s.get('xact_per_op'), '.2f')} |")
    for r in results:
        if "sshd_sessions" in r:
            s = r["sshd_sessions"]
            cs = s["cpu_ms_per_op"]
            lines.append(f"| OpenSSH sshd, direct | — | — | — | — | — | {s['per_second']:.1f} | "
                         f"{s['latency_ms']['p50']:.0f} / {s['latency_ms']['p95']:.0f} ms | sshd {cs['sshd']:.1f} | — |")
    lat = next((r["latency"] for r in results if "latency" in r), None)
    if lat and "local" in lat:
        lines += ["", f"| sequential logins, interleaved ({lat['n']} each, asyncssh, direct to one replica) | login p50 / p95 | login + `true` + close p50 / p95 |", "|---|---|---|"]
        for name, label in (("local", "gatehouse, store local"), ("postgres", "gatehouse, store postgres"), ("sshd", "OpenSSH sshd")):
            L = lat[name]
            lines.append(f"| {label} | {L['login']['p50']:.1f} / {L['login']['p95']:.1f} ms | {L['total']['p50']:.1f} / {L['total']['p95']:.1f} ms |")
        a, b = lat["postgres_minus_local_login"], lat["postgres_minus_local_total"]
        lines.append(f"| postgres − local, paired per round | {a['p50']:+.1f} / {a['p95']:+.1f} ms | {b['p50']:+.1f} / {b['p95']:+.1f} ms |")
    elif lat:
        lines += ["", f"login latency: failed: {lat.get('error')}"]
    rts = [r for r in results if "round_trips" in r]
    if rts:
        lines += ["", "| store postgres, replicas | statements (round trips) per issuance | per session (login + exec + end) | background statements/s (idle) |", "|---|---:|---:|---:|"]
        for r in rts:
            t = r["round_trips"]
            lines.append(f"| {r['replicas']} | {t['per_issuance']:.1f} | {t['per_session']:.1f} | {t['background_per_s']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gatehouse", required=True)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--configs", default="local:1,postgres:1,local:3,postgres:3")
    ap.add_argument("--json")
    ap.add_argument("--latency-rounds", type=int, default=200, help="interleaved login rounds (0: skip)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gatehouse-bench-replicas-"))
    results = []
    try:
        for i, spec in enumerate(a.configs.split(",") if a.configs else []):
            store, n = spec.split(":")
            print(f"== store {store}, {n} replica(s); load {open('/proc/loadavg').read().split()[:3]}", flush=True)
            r = bench_config(a.gatehouse, store, int(n), a.duration, work, with_sshd=(i == 0))
            print(json.dumps({k: v for k, v in r.items() if k != "issuance"} | (
                {"issuance": {k: v for k, v in r["issuance"].items() if k != "wrk"}} if "issuance" in r else {}), indent=1), flush=True)
            results.append(r)
        if a.latency_rounds:
            print(f"== login latency, interleaved; load {open('/proc/loadavg').read().split()[:3]}", flush=True)
            try:
                lat = latency_interleaved(a.gatehouse, work, a.latency_rounds)
            except Exception as e:
                lat = {"error": str(e).strip().splitlines()[-1][:400]}
            print(json.dumps(lat, indent=1), flush=True)
            results.append({"latency": lat})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    print()
    print(report(results))


if __name__ == "__main__":
    main()
