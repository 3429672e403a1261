"""The clients of bench/masking/bastion.sh: bulk `cat` with the stock ssh client, and keystroke
echo on a pty with asyncssh, for a direct connection, Gatehouse unmasked and Gatehouse masked."""
import asyncio
import os
import statistics
import subprocess
import sys
import time

import asyncssh

work, me, target_port, bastion_port, serve_pid, bulk_runs, echo_keys = sys.argv[1:8]
bulk_runs, echo_keys = int(bulk_runs), int(echo_keys)
TICKS = os.sysconf("SC_CLK_TCK")

# name -> (port, user, key)
PATHS = {
    "direct sshd": (target_port, me, "direct"),
    "Gatehouse, masking off": (bastion_port, "web-01", "plain"),
    "Gatehouse, masking on": (bastion_port, "web-01", "masked"),
}


def serve_cpu() -> float:
    fields = open(f"/proc/{serve_pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def ssh_argv(port, user, key):
    return ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-o", "IdentitiesOnly=yes", "-i", f"{work}/{key}", "-o", f"CertificateFile={work}/{key}-cert.pub",
            "-p", port, f"{user}@127.0.0.1", "--"]


def bulk():
    size = os.path.getsize(f"{work}/bulk.txt")
    samples = {name: [] for name in PATHS}
    cpu = {name: [] for name in PATHS}
    for _ in range(bulk_runs):
        for name, (port, user, key) in PATHS.items():
            before = serve_cpu()
            start = time.monotonic()
            with open(os.devnull, "wb") as sink:
                p = subprocess.run(ssh_argv(port, user, key) + ["cat", f"{work}/bulk.txt"], stdout=sink, stderr=subprocess.PIPE)
            elapsed = time.monotonic() - start
            assert p.returncode == 0, p.stderr
            samples[name].append(elapsed)
            cpu[name].append(serve_cpu() - before)
    print(f"\nbulk: {size >> 20} MiB of ordinary text via `cat`, {bulk_runs} runs each, interleaved")
    print("| path | median wall s | MB/s | Gatehouse CPU s (median) | Gatehouse CPU ns/byte |")
    print("|---|---:|---:|---:|---:|")
    for name in PATHS:
        wall = statistics.median(samples[name])
        c = statistics.median(cpu[name])
        print(f"| {name} | {wall:.2f} | {size / wall / 1e6:.0f} | {c:.2f} | {c / size * 1e9:.2f} |")


async def echo(name, port, user, key):
    keys = asyncssh.read_private_key(f"{work}/{key}")
    cert = asyncssh.read_certificate(f"{work}/{key}-cert.pub")
    async with asyncssh.connect("127.0.0.1", port=int(port), username=user, known_hosts=None, client_keys=[(keys, cert)],
                                agent_path=None) as conn:
        proc = await conn.create_process("cat", term_type="xterm", term_size=(80, 24), encoding=None)
        text = b"kubectl get secret db -o yaml; export PASSWORD=x; ls -la /var/log; git push origin main; "
        times = []
        for i in range(echo_keys):
            byte = text[i % len(text):i % len(text) + 1]
            start = time.perf_counter()
            proc.stdin.write(byte)
            got = await proc.stdout.read(64)
            times.append(time.perf_counter() - start)
            assert got, "echo"
        proc.stdin.write(b"\x04")
        proc.close()
    return times


def report_echo():
    print(f"\necho: {echo_keys} keystrokes into `cat` on a pty (one byte written, its echo read), per path")
    print("| path | median µs | p90 µs | p99 µs | max µs |")
    print("|---|---:|---:|---:|---:|")
    results = {}
    for name, spec in PATHS.items():
        results[name] = asyncio.run(echo(name, *spec))
    for name, times in results.items():
        t = sorted(times)
        q = lambda p: t[min(len(t) - 1, int(p * len(t)))] * 1e6
        print(f"| {name} | {statistics.median(t) * 1e6:.0f} | {q(0.9):.0f} | {q(0.99):.0f} | {t[-1] * 1e6:.0f} |")


bulk()
report_echo()
