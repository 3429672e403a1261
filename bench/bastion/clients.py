#!/usr/bin/env python3
"""Measuring clients for bench/bastion/run.sh. Each mode prints one JSON object on stdout.

  time RUNS LABEL=SHELLCMD ...          run each shell command RUNS times, interleaved (round
                                        robin, the order rotated each round); wall seconds each
  asyncssh-warm RUNS PORT USER KEY CERT one asyncssh connection, RUNS sequential conn.run("true")
  idle PID PORT USER KEY CERT CONNS PER hold CONNS connections x PER sessions (`cat`, stdin silent) open,
                                        RSS of PID before, with all open, after all closed
  burst PID PORT USER KEY CERT N BURSTS [PROCS]
                                        BURSTS bursts of N simultaneous connections running `true`
                                        (from PROCS client processes, default 1); RSS at idle
                                        baseline, peak and after each burst

Everything is bounded: every wait has a deadline and says so in the output when it expires.
"""
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time


def summary(samples):
    s = sorted(samples)
    p90 = s[min(len(s) - 1, max(0, int(round(0.9 * len(s))) - 1))]
    return {"median": statistics.median(s), "p90": p90, "min": s[0], "max": s[-1], "n": len(s), "samples": samples}


def time_commands(runs, specs):
    labels = [spec.split("=", 1)[0] for spec in specs]
    cmds = dict(spec.split("=", 1) for spec in specs)
    samples = {label: [] for label in labels}
    failed = {label: [] for label in labels}  # a failed run is counted, not timed
    for i in range(runs):
        order = labels[i % len(labels):] + labels[:i % len(labels)]
        for label in order:
            t = time.perf_counter()
            r = subprocess.run(["bash", "-c", cmds[label]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
            elapsed = time.perf_counter() - t
            if r.returncode != 0:
                failed[label].append(f"exit {r.returncode}: {r.stderr.decode()[-300:]}")
                if len(failed[label]) > max(3, runs // 5):
                    sys.exit(f"{label}: {len(failed[label])} failures: {failed[label][-1]}")
                continue
            samples[label].append(elapsed)
    return {label: dict(summary(v), failed=failed[label]) for label, v in samples.items()}


def client_options(port, user, key_path, cert_path):
    import asyncssh
    key = asyncssh.read_private_key(key_path)
    cert = asyncssh.read_certificate(cert_path)
    return dict(host="127.0.0.1", port=int(port), username=user, known_hosts=None, client_keys=[(key, cert)],
                agent_path=None, connect_timeout=60, login_timeout=120)


async def asyncssh_warm(runs, options):
    import asyncssh
    samples = []
    async with asyncssh.connect(**options) as conn:
        await conn.run("true", check=True)  # the first session also connects the target leg
        failed = []
        for _ in range(runs):
            t = time.perf_counter()
            r = await conn.run("true", check=False)
            if r.exit_status != 0:  # counted, not timed
                failed.append(f"exit {r.exit_status}: {r.stderr[-300:]}")
                continue
            samples.append(time.perf_counter() - t)
    return dict(summary(samples), failed=failed)


# ---- the gatehouse process, seen from /proc ---------------------------------------------------

def status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                fields[key] = int(value.split()[0])
    fields["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return fields


def connections_on(port):
    """TCP connections whose local port is the bastion's (every state but LISTEN and TIME_WAIT)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local, state = parts[1], parts[3]
                    if int(local.rsplit(":", 1)[1], 16) == port and state not in ("0A", "06"):
                        n += 1
        except FileNotFoundError:
            pass
    return n


def wait_quiet(pid, port, baseline_fds, deadline_s=60):
    """Until no connection is left on the bastion's port and the process holds no more
    descriptors than at baseline (its target connections and recordings closed too)."""
    t0 = time.time()
    while time.time() - t0 < deadline_s:
        st = status(pid)
        if connections_on(port) == 0 and st["fds"] <= baseline_fds:
            return {"quiet_after_s": round(time.time() - t0, 2), "timed_out": False}
        time.sleep(0.1)
    return {"quiet_after_s": round(time.time() - t0, 2), "timed_out": True,
            "connections_left": connections_on(port), "fds": status(pid)["fds"], "baseline_fds": baseline_fds}


def settled_rss(pid, deadline_s=15):
    """RSS once it stops falling: Gatehouse trims about once a second after connections drop,
    so wait until two samples one second apart agree within 1% (or the deadline)."""
    t0 = time.time()
    prev = status(pid)["VmRSS"]
    while time.time() - t0 < deadline_s:
        time.sleep(1)
        cur = status(pid)["VmRSS"]
        if abs(cur - prev) <= prev * 0.01:
            st = status(pid)
            st["settled_after_s"] = round(time.time() - t0, 1)
            return st
        prev = cur
    st = status(pid)
    st["settled_after_s"] = None
    return st


class PeakSampler:
    def __init__(self, pid, interval=0.05):
        self.pid, self.interval, self.peak, self.stop_flag = pid, interval, 0, threading.Event()
        self.peak_threads = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop_flag.is_set():
            try:
                st = status(self.pid)
                self.peak = max(self.peak, st["VmRSS"])
                self.peak_threads = max(self.peak_threads, st["Threads"])
            except (FileNotFoundError, ProcessLookupError):
                return
            self.stop_flag.wait(self.interval)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join()


async def one_connection(options, commands, hold=None, gate=None):
    """Connect, start every command at once on one connection; return exit statuses (or errors).
    With hold: start the commands as processes, await hold(procs) (while they run), then close.
    gate (a semaphore) is held only while connecting and opening."""
    import asyncssh
    conn = None
    held = False
    try:
        if gate is not None:
            await gate.acquire()
        try:
            conn = await asyncssh.connect(**options)
            if hold is None:
                results = await asyncio.gather(*(conn.run(c, check=False) for c in commands), return_exceptions=True)
                return [r.exit_status if not isinstance(r, BaseException) else repr(r) for r in results]
            procs = await asyncio.gather(*(conn.create_process(c) for c in commands), return_exceptions=True)
        finally:
            if gate is not None:
                gate.release()
        held = True
        await hold(procs)
        return [("open" if not isinstance(p, BaseException) else repr(p)) for p in procs]
    except (OSError, asyncssh.Error, asyncio.TimeoutError) as e:
        if hold is not None and not held:
            await hold([])  # counted as ready (with nothing open), so the others are not kept waiting
        return [repr(e)] * len(commands)
    finally:
        if conn is not None:
            conn.close()
            await conn.wait_closed()


async def idle(pid, port, options, conns, per):
    fds0 = status(pid)["fds"]  # a fresh process: listeners, audit log, host keys
    warm = await one_connection(options, ["true"])
    quiet = wait_quiet(pid, port, fds0 + 5)
    before = settled_rss(pid)
    opened = asyncio.Event()
    release = asyncio.Event()
    count = {"ready": 0}

    async def hold(procs):
        count["ready"] += 1
        if count["ready"] == conns:
            opened.set()
        await release.wait()
        for p in procs:
            if not isinstance(p, BaseException):
                p.close()

    gate = asyncio.Semaphore(20)  # open at a steady pace: this measures holding, not bursts
    t0 = time.time()
    tasks = [asyncio.create_task(one_connection(options, ["cat"] * per, hold=hold, gate=gate)) for _ in range(conns)]
    try:
        await asyncio.wait_for(opened.wait(), timeout=300)
        open_timed_out = False
    except asyncio.TimeoutError:
        open_timed_out = True
    open_s = time.time() - t0
    await asyncio.sleep(0)  # let every holder see it is counted
    # Every session open on the client side means exec was answered; give the pump a moment by
    # waiting until RSS settles rather than a fixed sleep.
    with_all = settled_rss(pid)
    with_all["connections"] = connections_on(port)
    release.set()
    results = await asyncio.gather(*tasks)
    flat = [r for rs in results for r in rs]
    after_quiet = wait_quiet(pid, port, fds0 + 5)
    after = settled_rss(pid)
    return {"warm": warm, "baseline_quiet": quiet, "before": before, "with_all": with_all, "after": after,
            "after_quiet": after_quiet, "open_s": round(open_s, 1), "open_timed_out": open_timed_out,
            "sessions_open": sum(1 for r in flat if r == "open"), "errors": sorted({r for r in flat if r != "open"})[:5],
            "per_session_kib": (with_all["VmRSS"] - before["VmRSS"]) / (conns * per)}


async def in_workers(worker_args, n, procs):
    """n connections from procs client processes (a client host's cores, not one Python thread,
    so no handshake waits for 499 others in one event loop): each connects its share when told."""
    workers = []
    for i in range(procs):
        count = n // procs + (1 if i < n % procs else 0)
        w = await asyncio.create_subprocess_exec(sys.executable, __file__, "burst-worker", *worker_args, str(count),
                                                 stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        workers.append(w)
    for w in workers:  # every worker has imported asyncssh and read its key
        line = await asyncio.wait_for(w.stdout.readline(), timeout=60)
        assert line.strip() == b"ready", line
    t0 = time.time()
    for w in workers:
        w.stdin.write(b"go\n")
        await w.stdin.drain()
    results = []
    for w in workers:
        out, _ = await asyncio.wait_for(w.communicate(), timeout=600)
        results.extend(json.loads(out))
    return results, t0


async def burst_worker(options, count):
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    results = await asyncio.gather(*(one_connection(options, ["true"]) for _ in range(count)))
    print(json.dumps(results), flush=True)


async def burst(pid, port, options, n, bursts, procs=1, worker_args=()):
    fresh = status(pid)
    fds0 = fresh["fds"]
    warm = await one_connection(options, ["true"])
    wait_quiet(pid, port, fds0 + 5)
    baseline = settled_rss(pid)
    out = {"fresh": fresh, "warm": warm, "baseline": baseline, "bursts": []}
    for b in range(bursts):
        with PeakSampler(pid) as sampler:
            if procs <= 1:
                t0 = time.time()
                results = await asyncio.gather(*(one_connection(options, ["true"]) for _ in range(n)))
            else:
                results, t0 = await in_workers(worker_args, n, procs)
            wall = time.time() - t0
            quiet = wait_quiet(pid, port, fds0 + 5)
        after = settled_rss(pid)
        flat = [r[0] for r in results]
        errors = {}
        for r in flat:
            if r != 0:
                errors[str(r)[:160]] = errors.get(str(r)[:160], 0) + 1
        out["bursts"].append({"completed": sum(1 for r in flat if r == 0), "of": n, "wall_s": round(wall, 2),
                              "peak_rss": sampler.peak, "peak_threads": sampler.peak_threads,
                              "quiet": quiet, "after": after, "errors": errors})
    return out


def main():
    mode = sys.argv[1]
    if mode == "time":
        print(json.dumps(time_commands(int(sys.argv[2]), sys.argv[3:])))
    elif mode == "asyncssh-warm":
        runs, port, user, key, cert = sys.argv[2:7]
        print(json.dumps(asyncio.run(asyncssh_warm(int(runs), client_options(port, user, key, cert)))))
    elif mode == "idle":
        pid, port, user, key, cert, conns, per = sys.argv[2:9]
        print(json.dumps(asyncio.run(idle(int(pid), int(port), client_options(port, user, key, cert), int(conns), int(per)))))
    elif mode == "burst":
        pid, port, user, key, cert, n, bursts = sys.argv[2:9]
        procs = int(sys.argv[9]) if len(sys.argv) > 9 else 1
        print(json.dumps(asyncio.run(burst(int(pid), int(port), client_options(port, user, key, cert), int(n), int(bursts),
                                           procs, (port, user, key, cert)))))
    elif mode == "burst-worker":
        port, user, key, cert, count = sys.argv[2:7]
        asyncio.run(burst_worker(client_options(port, user, key, cert), int(count)))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
