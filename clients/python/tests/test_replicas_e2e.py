"""Issue 16, end to end: three `gatehouse serve` replicas sharing one PostgreSQL 15 database,
behind haproxy in TCP mode, in front of a real OpenSSH target; SSH clients are asyncssh.

Every part is real and started here on 127.0.0.1 (see replicas.py): PostgreSQL 15 and haproxy
from Debian, OpenSSH's sshd, the gatehouse binary ($GATEHOUSE_BIN). The one stand-in is moto's
S3 server, used only by the last test (recordings shipped to a bucket); Gatehouse's S3 client
speaks plain S3 to it. Every wait polls a condition against a deadline.

What the replicas share (the `store:` section, kind postgres): the CA keys (replica 1 creates
them and publishes them, replicas 2 and 3 adopt them), one audit chain, certificate serials
(a database sequence), the `jti` replay cache, revocations and CA rotation. What each has on
its own: a state directory and a recordings directory. Host keys: one directory for all.

The tests run in file order on one cluster (module scope); a test that stops a part brings it
back before it ends, so the next one starts from three healthy replicas."""
from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import json
import re
import subprocess
import time
from pathlib import Path

import asyncssh
import pytest

import replicas as R
from conftest import gatehouse_bin, require_issuance

pytestmark = [pytest.mark.e2e, pytest.mark.issuance, pytest.mark.replicas]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    gh = gatehouse_bin()
    require_issuance(gh)
    c = R.start_cluster(tmp_path_factory.mktemp("replicas"), gh, replicas=3, store="postgres")
    yield c
    c.stop()


# ---------------------------------------------------------------- helpers

def keypair(c: R.Cluster, name: str, port: int | None = None, sub: str = "agent-1") -> tuple[Path, dict]:
    """A fresh key and a certificate for it from the issuance service (haproxy's issuance
    frontend unless `port` names one replica's)."""
    key = c.directory / name
    return key, c.issue(key, port=port, sub=sub)


def client_keys(key: Path):
    return [(asyncssh.read_private_key(str(key)), asyncssh.read_certificate(f"{key}-cert.pub"))]


async def connect(c: R.Cluster, port: int, key: Path, timeout: float = 30):
    return await asyncssh.connect("127.0.0.1", port, username="web-01", client_keys=client_keys(key),
                                  known_hosts=str(c.known_hosts), login_timeout=timeout, connect_timeout=timeout)


async def run_once(c: R.Cluster, port: int, key: Path, command: str) -> asyncssh.SSHCompletedProcess:
    async with await connect(c, port, key) as conn:
        return await conn.run(command, check=False, timeout=30)


async def login_refused(c: R.Cluster, port: int, key: Path) -> str | None:
    """The reason a login was refused (the client's error text, with any auth banner), or None
    when the login succeeded and a command ran."""
    banners: list[str] = []

    class Client(asyncssh.SSHClient):
        def auth_banner_received(self, msg, lang):
            banners.append(msg)

    try:
        conn = await asyncssh.connect("127.0.0.1", port, username="web-01", client_keys=client_keys(key),
                                      known_hosts=str(c.known_hosts), client_factory=Client, login_timeout=20, connect_timeout=20)
    except (asyncssh.PermissionDenied, asyncssh.DisconnectError, asyncssh.ConnectionLost, ConnectionError) as e:
        return " ".join(banners + [f"{type(e).__name__}: {e}"])
    async with conn:
        r = await conn.run("true", check=False, timeout=30)
        if r.exit_status == 0:
            return None
        return " ".join(banners + [f"exit {r.exit_status}: {r.stderr}"])


def recordings_by_replica(c: R.Cluster) -> dict[int, set[str]]:
    return {r.index: {p.name for p in r.recording_files()} for r in c.replicas}


def audit_verify(c: R.Cluster) -> subprocess.CompletedProcess:
    return c.gh("audit", "verify", "--config", c.config, check=False)


def chain_is_unbroken_in_sql(c: R.Cluster) -> tuple[int, int, int]:
    """(rows, max seq, links broken): checked in SQL, independently of Gatehouse's verifier:
    seq has no gap and every row's prev_hash is the previous row's hash."""
    rows, top = map(int, c.postgres.psql("SELECT count(*), coalesce(max(seq), 0) FROM audit_events").split("|"))
    broken = int(c.postgres.psql("SELECT count(*) FROM audit_events a JOIN audit_events b ON b.seq = a.seq + 1 "
                                 "WHERE b.prev_hash <> a.hash"))
    return rows, top, broken


def user_ca_keys(r: R.Replica) -> set[str]:
    status, body = r.issuance("/v1/ca/user")
    assert status == 200, f"replica {r.index}: GET /v1/ca/user answered {status}: {body[:300]!r}"
    return {" ".join(ln.split()[:2]) for ln in body.decode().splitlines() if ln.strip()}


def signing_fingerprint(cert: Path) -> str:
    out = R.run(["ssh-keygen", "-L", "-f", cert]).stdout
    m = re.search(r"Signing CA: \S+ (SHA256:\S+)", out)
    assert m, out
    return m.group(1)


def fingerprint(key_line: str, tmp: Path) -> str:
    f = tmp / "fp.pub"
    f.write_text(key_line + "\n")
    return R.run(["ssh-keygen", "-l", "-f", f]).stdout.split()[1]


def restart(c: R.Cluster, r: R.Replica) -> None:
    r.start(c.host_keys)
    R.wait_until(lambda: c.haproxy.server_states().get(f"r{r.index}") == "UP", 20,
                 f"haproxy to see replica {r.index} UP again", c.haproxy.proc, c.haproxy.log)


STREAM_SCRIPT = b'for i in $(seq 1 200000); do echo "line-$i"; sleep 0.002; done\n'


# ---------------------------------------------------------------- the tests

async def test_sessions_through_haproxy_land_on_all_three_replicas(cluster):
    c = cluster
    # /healthz tells the balancer each replica can take sessions: 200 {"status": "ok", ...}.
    for r in c.replicas:
        status, body = r.issuance("/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok", (r.index, status, body[:200])
    key, answer = keypair(c, "land")
    # The issuance answer names the balancer, not the replica that answered.
    assert answer["bastion_addresses"] == [f"127.0.0.1:{c.haproxy.ssh_port}"]
    # One CA for all: every replica publishes the same user CA keys.
    assert user_ca_keys(c.replicas[0]) == user_ca_keys(c.replicas[1]) == user_ca_keys(c.replicas[2])
    before = recordings_by_replica(c)
    for i in range(9):
        r = await run_once(c, c.haproxy.ssh_port, key, f"echo landed {i}")
        assert (r.exit_status, r.stdout) == (0, f"landed {i}\n"), r.stderr
    after = recordings_by_replica(c)
    new = {i: after[i] - before[i] for i in after}
    assert all(new[i] for i in new), f"sessions per replica (new recordings): { {i: len(v) for i, v in new.items()} }"
    assert sum(len(v) for v in new.values()) == 9
    # One audit chain holds all nine logins of this certificate, whichever replica took them.
    logins = int(c.postgres.psql("SELECT count(*) FROM audit_events WHERE action = 'ssh.login' AND outcome = 'success' "
                                 f"AND details::jsonb->>'serial' = '{answer['serial']}'"))
    assert logins == 9
    v = audit_verify(c)
    assert v.returncode == 0, v.stdout + v.stderr


async def test_kill_9_mid_stream(cluster, tmp_path):
    """kill -9 the replica carrying a streaming session: new connections through haproxy
    succeed within 5 s; the audit chain verifies; every byte the agent received is in that
    session's recording (recovered by `gatehouse verify`, read back by `gatehouse export`)."""
    c = cluster
    key, _ = keypair(c, "kill9")
    before = recordings_by_replica(c)
    conn = await connect(c, c.haproxy.ssh_port, key)
    proc = await conn.create_process("bash -s", encoding=None)
    proc.stdin.write(STREAM_SCRIPT)
    received = b""
    while received.count(b"\n") < 200:
        chunk = await asyncio.wait_for(proc.stdout.read(65536), 20)
        assert chunk, "the stream ended early"
        received += chunk
    # Which replica carries it: the one with a new recording.
    new = {i: n - before[i] for i, n in recordings_by_replica(c).items()}
    victims = [r for r in c.replicas if new[r.index]]
    assert len(victims) == 1 and len(new[victims[0].index]) == 1, new
    victim = victims[0]
    recording_id = next(iter(new[victim.index])).removesuffix(".ghrec")

    victim.kill9()
    killed_at = time.monotonic()
    try:
        while True:  # everything that still reaches the agent after the kill
            chunk = await asyncio.wait_for(proc.stdout.read(65536), 20)
            if not chunk:
                break
            received += chunk
    except (asyncssh.Error, ConnectionError, OSError):
        pass
    conn.abort()

    # New connections through haproxy: one succeeds within 5 s of the kill.
    key2, _ = keypair(c, "after-kill")
    ok_after = None
    while time.monotonic() - killed_at < 5:
        try:
            r = await asyncio.wait_for(run_once(c, c.haproxy.ssh_port, key2, "echo after-kill"), 5 - (time.monotonic() - killed_at) + 0.01)
            if r.exit_status == 0 and r.stdout == "after-kill\n":
                ok_after = time.monotonic() - killed_at
                break
        except (asyncssh.Error, OSError, asyncio.TimeoutError):
            await asyncio.sleep(0.05)
    assert ok_after is not None, "no connection through haproxy succeeded within 5 s of kill -9"
    print(f"\nfirst session through haproxy after kill -9: {ok_after:.2f} s")
    # ...and keep succeeding: haproxy took the dead replica out of the rotation.
    R.wait_until(lambda: c.haproxy.server_states().get(f"r{victim.index}") not in ("UP", None), 5,
                 "haproxy to mark the killed replica down")
    for i in range(4):
        r = await run_once(c, c.haproxy.ssh_port, key2, f"echo again {i}")
        assert r.exit_status == 0

    v = audit_verify(c)
    assert v.returncode == 0, v.stdout + v.stderr

    # The recording: recovered (torn tail cut, crash end signed) and verified, then exported.
    rec = ["--recordings", str(victim.recordings), "--state", str(victim.state)]
    v = c.gh("verify", *rec, recording_id, check=False)
    assert v.returncode == 0, v.stdout + v.stderr
    out = tmp_path / "recorded.stdout"
    c.gh("export", *rec, recording_id, "--format", "raw", "--stream", "stdout", "-o", out)
    recorded = out.read_bytes()
    assert received.count(b"\n") >= 200
    assert recorded.startswith(received), (
        f"the agent received {len(received)} bytes; the recording holds {len(recorded)}, "
        f"first difference at byte {next((i for i, (a, b) in enumerate(zip(received, recorded)) if a != b), min(len(received), len(recorded)))}")

    restart(c, victim)


async def test_revocation_and_ca_rotation_reach_every_replica(cluster):
    c = cluster
    r1, r2, r3 = c.replicas
    key, answer = keypair(c, "revoked", port=r1.issuance_port)
    assert await login_refused(c, r3.ssh_port, key) is None  # works on replica 3 before
    c.gh("cert", "revoke", "--config", r1.config, "--serial", answer["serial"], "--ca", "user")
    revoked_at = time.monotonic()
    refused = None
    while time.monotonic() - revoked_at < 1.0:
        refused = await login_refused(c, r3.ssh_port, key)  # replica 3 directly, not through haproxy
        if refused is not None:
            break
    elapsed = time.monotonic() - revoked_at
    assert refused is not None and elapsed <= 1.0, f"replica 3 still accepted the revoked certificate {elapsed:.2f} s after the revocation"
    print(f"\nrevoked on replica 1, refused on replica 3 after {elapsed:.2f} s")
    for r in (r1, r2):
        assert await login_refused(c, r.ssh_port, key) is not None, f"replica {r.index} accepted a revoked certificate"

    # A CA rotation walked on replica 2 is seen by all.
    old_keys = user_ca_keys(r1)
    assert len(old_keys) == 1 and all(user_ca_keys(r) == old_keys for r in c.replicas)
    old_cert_key, _ = keypair(c, "pre-rotation", port=r3.issuance_port)
    c.gh("ca", "rotate", "--config", r2.config, "user")  # standby -> init: a new key, trusted, not signing yet
    at = time.monotonic()
    R.wait_until(lambda: all(len(user_ca_keys(r)) == 2 for r in c.replicas), 1.0,
                 "every replica to publish the new user CA key (phase init) within 1 s")
    both = user_ca_keys(r1)
    assert old_keys < both and all(user_ca_keys(r) == both for r in c.replicas)
    new_key = (both - old_keys).pop()
    c.gh("ca", "rotate", "--config", r2.config, "user")  # init -> update: the new key signs
    at = time.monotonic()
    new_fp = fingerprint(new_key, c.directory)
    for r in c.replicas:
        # Within 1 s every replica's issuance signs with the new key...
        def signs_new() -> bool:
            k, _ = keypair(c, f"rotated-{r.index}", port=r.issuance_port)
            return signing_fingerprint(Path(f"{k}-cert.pub")) == new_fp
        R.wait_until(signs_new, max(0.05, 1.0 - (time.monotonic() - at)) + 0.5, f"replica {r.index} to sign with the new user CA key")
    for r in c.replicas:
        # ...and every replica accepts certificates from the new key and, still, from the old one.
        for k in (c.directory / f"rotated-{c.replicas[(r.index) % 3].index}", old_cert_key):
            assert await login_refused(c, r.ssh_port, k) is None, f"replica {r.index} refused {k.name}"
    v = audit_verify(c)
    assert v.returncode == 0, v.stdout + v.stderr


def test_10000_issuances_over_three_replicas(cluster):
    """10,000 certificates, 3,333 or 3,334 from each replica (sent to each replica's own
    issuance port, 24 clients at once): no serial twice, one unbroken audit chain.

    The tokens: 10,000 real OIDC ID tokens, each with its own `jti`, signed with the Ed25519
    key of the test's own issuer (replicas.Issuer: discovery and JWKS served over HTTP on
    loopback; the key stays in this process). Signing one takes ~50 us, so the tokens cost
    under a second, where glewlwyd (test_issuance_e2e.py) takes ~20 ms per token; Gatehouse
    verifies each one completely (and, `jti_replay: true`, refuses any second use on any
    replica: checked below)."""
    c = cluster
    n = 10_000
    key = c.directory / "bulk"
    R.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])
    public = " ".join(Path(f"{key}.pub").read_text().split()[:2])
    tokens = [c.issuer.token(f"bulk-{i % 97}") for i in range(n)]
    seq_before = int(c.postgres.psql("SELECT coalesce(max(seq), 0) FROM audit_events"))

    def worker(items: list[tuple[int, str]]) -> list[tuple[int, int, dict]]:
        conns = {r.index: http.client.HTTPConnection("127.0.0.1", r.issuance_port, timeout=60) for r in c.replicas}
        out = []
        try:
            for i, token in items:
                r = c.replicas[i % 3]
                status, body = R.post_certificate(r.issuance_port, token, public, ttl=300, conn=conns[r.index])
                out.append((r.index, status, body))
        finally:
            for conn in conns.values():
                conn.close()
        return out

    started = time.monotonic()
    items = list(enumerate(tokens))
    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        results = [x for part in pool.map(worker, [items[k::24] for k in range(24)]) for x in part]
    elapsed = time.monotonic() - started
    failures = [(i, s, b) for i, s, b in results if s != 200]
    assert not failures, f"{len(failures)} issuances failed, e.g. {failures[:3]}"
    serials = [int(b["serial"]) for _, _, b in results]
    per_replica = {r.index: sum(1 for i, _, _ in results if i == r.index) for r in c.replicas}
    print(f"\n10,000 issuances in {elapsed:.1f} s ({n / elapsed:.0f}/s): {per_replica}")
    assert sorted(per_replica.values()) == [3333, 3333, 3334]
    dupes = len(serials) - len(set(serials))
    assert dupes == 0, f"{dupes} serials issued twice"
    # Serials come from the database's sequence.
    last = int(c.postgres.psql("SELECT last_value FROM certificate_serials"))
    assert max(serials) <= last

    # One chain: every issuance is in it once, and it verifies (Gatehouse's verifier, and SQL).
    audited = c.postgres.psql("SELECT details::jsonb->>'serial' FROM audit_events WHERE action = 'cert.issue' "
                              f"AND outcome = 'success' AND seq > {seq_before}").split()
    assert sorted(map(int, audited)) == sorted(serials)
    rows, top, broken = chain_is_unbroken_in_sql(c)
    assert rows == top and broken == 0, f"{rows} rows, max seq {top}, {broken} broken links"
    v = audit_verify(c)
    assert v.returncode == 0, v.stdout + v.stderr

    # The jti cache is shared: a token used on replica 1 is refused on replica 2.
    token = c.issuer.token("replayer")
    assert R.post_certificate(c.replicas[0].issuance_port, token, public)[0] == 200
    status, body = R.post_certificate(c.replicas[1].issuance_port, token, public)
    assert (status, body.get("code")) == (401, "token_replayed"), body


async def test_database_down_refuses_new_logins_keeps_live_sessions_and_recovers(cluster):
    c = cluster
    key, _ = keypair(c, "db-down")
    # A live session through haproxy, before the database goes.
    conn = await connect(c, c.haproxy.ssh_port, key)
    proc = await conn.create_process("bash -s", encoding=None)

    async def say(word: str) -> None:
        proc.stdin.write(f"echo {word}\n".encode())
        got = b""
        while f"{word}\n".encode() not in got:
            chunk = await asyncio.wait_for(proc.stdout.read(4096), 15)
            assert chunk, f"the live session ended while waiting for {word!r}"
            got += chunk

    await say("before")
    c.postgres.stop()  # fast shutdown of the postmaster, by its pid
    try:
        # /healthz tells the balancer: 503 {"status": "unavailable"} on every replica...
        def unavailable(r: R.Replica) -> bool:
            status, body = r.issuance("/healthz")
            return status == 503 and json.loads(body).get("status") == "unavailable"
        for r in c.replicas:
            R.wait_until(lambda: unavailable(r), 15, f"replica {r.index}'s /healthz to answer 503 unavailable")
        # ...and haproxy takes every replica out of the rotation.
        R.wait_until(lambda: set(c.haproxy.server_states().values()) == {"DOWN"}, 5, "haproxy to mark every replica down")

        # Issuance refuses with an error naming the store.
        status, body = R.post_certificate(c.replicas[0].issuance_port, c.issuer.token("agent-1"),
                                          " ".join(Path(f"{key}.pub").read_text().split()[:2]))
        assert status == 503, (status, body)
        assert "store" in json.dumps(body).lower(), body
        # SSH logins are refused (directly on a replica: haproxy has none in rotation), and the
        # client is told why before authentication ends (SSH_MSG_USERAUTH_BANNER, which
        # OpenSSH prints): a sentence naming the store.
        for r in c.replicas:
            refused = await login_refused(c, r.ssh_port, key)
            assert refused is not None, f"replica {r.index} let a login in with its store down"
            assert "gatehouse:" in refused and "store" in refused.lower(), f"replica {r.index}'s refusal: {refused!r}"
        print(f"\nlogin refused with the store down: {refused!r}")

        # The live session goes on.
        await say("during")
    finally:
        c.postgres.start()

    # The replicas recover: healthy again, back in haproxy, new certificates and logins succeed.
    for r in c.replicas:
        R.wait_until(lambda: r.issuance("/healthz")[0] == 200, 30, f"replica {r.index}'s /healthz to answer 200 again")
    R.wait_until(lambda: set(c.haproxy.server_states().values()) == {"UP"}, 10, "haproxy to see every replica up again")
    key2, _ = keypair(c, "db-back")
    for i in range(3):
        r = await run_once(c, c.haproxy.ssh_port, key2, f"echo back {i}")
        assert (r.exit_status, r.stdout) == (0, f"back {i}\n"), r.stderr
    await say("after")
    proc.stdin.write_eof()
    await asyncio.wait_for(proc.wait(), 15)
    assert proc.exit_status == 0
    conn.close()
    # What happened while the database was down is in the chain now, and it verifies.
    v = audit_verify(c)
    assert v.returncode == 0, v.stdout + v.stderr


# ---------------------------------------------------------------- recordings in the bucket (separate)

@pytest.fixture(scope="module")
def shipping_cluster(tmp_path_factory):
    """Its own three replicas and database, with `recordings_store: {kind: s3, …}` pointing at
    moto's S3 server (the stand-in: Gatehouse's client speaks plain S3 to it). The replicas
    share one `recordings:` directory, each spooling into `<it>/replica<N>/` (`replica_id`),
    so a live replica can take over a dead one's spool, as on one host or a shared volume."""
    gh = gatehouse_bin()
    require_issuance(gh)
    c = R.start_cluster(tmp_path_factory.mktemp("replicas-s3"), gh, replicas=3, store="postgres", recordings_store=True)
    yield c
    c.stop()


def started_recordings(c: R.Cluster, after_seq: int, n: int, timeout: float = 15) -> list[tuple[R.Replica, str]]:
    """(replica, recording id) of the first `n` sessions started after audit seq `after_seq`,
    from the shared chain's `session.start` records (their `recording` is the local path,
    under the recording replica's directory). Read from the database, not the directories:
    the shipper may have shipped and deleted a local file before the test looks."""
    def rows():
        out = c.postgres.psql("SELECT details::jsonb->>'recording' FROM audit_events WHERE action = 'session.start' "
                              f"AND outcome = 'success' AND seq > {after_seq} ORDER BY seq").split()
        return out if len(out) >= n else None
    found = []
    for path in R.wait_until(rows, timeout, f"{n} session.start records in the audit chain")[:n]:
        replica = next(r for r in c.replicas if Path(path).is_relative_to(r.recordings))
        found.append((replica, Path(path).name.removesuffix(".ghrec")))
    return found


def audit_head(c: R.Cluster) -> int:
    return int(c.postgres.psql("SELECT coalesce(max(seq), 0) FROM audit_events"))


async def test_recordings_shipped_to_the_bucket_and_verified_from_there(shipping_cluster, tmp_path):
    """Every recording ends up in the bucket (and the local copy goes once it is there) and
    verifies from the bucket's copy; a replica killed mid-stream leaves an unfinished
    recording that a live replica recovers and ships within 2 minutes, holding every byte the
    agent received."""
    c = shipping_cluster
    key, _ = keypair(c, "shipped")
    head = audit_head(c)
    for i in range(6):
        r = await run_once(c, c.haproxy.ssh_port, key, f"echo shipped {i}")
        assert r.exit_status == 0
    started = started_recordings(c, head, 6)
    sessions: dict[int, set[str]] = {r.index: set() for r in c.replicas}
    for replica, rid in started:
        sessions[replica.index].add(rid)
    assert all(sessions.values()), f"sessions per replica: {sessions}"

    def in_bucket(recording_id: str) -> bool:
        return any(recording_id in k for k in c.moto.keys())

    every = {rid for ids in sessions.values() for rid in ids}
    R.wait_until(lambda: all(in_bucket(rid) for rid in every), 60, "every finished recording in the bucket", interval=0.5)
    R.wait_until(lambda: not any(f"{rid}.ghrec" in {p.name for p in r.recording_files()} for r in c.replicas for rid in every), 30,
                 "the local copies to be deleted once their objects are verified", interval=0.5)

    def download(idx: int, ids: set[str]) -> Path:
        d = tmp_path / f"bucket-r{idx}"
        d.mkdir(exist_ok=True)
        s3 = c.moto.client()
        for k in c.moto.keys():
            if any(rid in k for rid in ids):
                s3.download_file(c.moto.bucket, k, str(d / k.rsplit("/", 1)[-1]))
        return d

    for idx, ids in sessions.items():
        # Verified from the bucket twice: by Gatehouse reading the bucket itself (`verify
        # --config`), and on the objects as fetched with boto3 (independent of its reader).
        for rid in ids:
            v = c.gh("verify", "--config", c.replicas[idx % 3].config, rid, check=False)
            assert v.returncode == 0, v.stdout + v.stderr
        d = download(idx, ids)
        assert len(list(d.glob("*.ghrec"))) == len(ids)
        v = c.gh("verify", "--recordings", d, "--state", c.replicas[idx - 1].state, "--all", "--no-recover", check=False)
        assert v.returncode == 0, v.stdout + v.stderr

    # kill -9 mid-stream: the dead replica's recording is recovered and shipped by a live one.
    head = audit_head(c)
    conn = await connect(c, c.haproxy.ssh_port, key)
    proc = await conn.create_process("bash -s", encoding=None)
    proc.stdin.write(STREAM_SCRIPT)
    received = b""
    while received.count(b"\n") < 200:
        chunk = await asyncio.wait_for(proc.stdout.read(65536), 20)
        assert chunk
        received += chunk
    [(victim, recording_id)] = started_recordings(c, head, 1)
    victim.kill9()
    killed_at = time.monotonic()
    try:
        while chunk := await asyncio.wait_for(proc.stdout.read(65536), 20):
            received += chunk
    except (asyncssh.Error, ConnectionError, OSError):
        pass
    conn.abort()
    R.wait_until(lambda: in_bucket(recording_id), 120, "the killed replica's recording in the bucket (2 minutes)", interval=1)
    print(f"\nthe killed replica's recording was in the bucket {time.monotonic() - killed_at:.1f} s after kill -9")
    live = next(r for r in c.replicas if r.alive())
    v = c.gh("verify", "--config", live.config, recording_id, check=False)
    assert v.returncode == 0, v.stdout + v.stderr
    d = download(victim.index, {recording_id})
    v = c.gh("verify", "--recordings", d, "--state", victim.state, recording_id, "--no-recover", check=False)
    assert v.returncode == 0, v.stdout + v.stderr
    out = tmp_path / "killed.stdout"
    c.gh("export", "--recordings", d, "--state", victim.state, recording_id, "--format", "raw", "--stream", "stdout", "-o", out)
    assert out.read_bytes().startswith(received)
