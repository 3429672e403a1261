#!/usr/bin/env python3
"""Many sessions on one connection, and hostile requests on a live channel, for the Swift tests.

Real clients (asyncssh, paramiko) against Gatehouse. Each mode prints one JSON object on stdout
describing what the client saw; the Swift test asserts on it.

  asyncssh-many PORT TARGET KEY CERT N   N concurrent commands, then N sequential, one connection
  paramiko-many PORT TARGET KEY CERT N   N exec_command calls on one paramiko transport
  live-requests PORT TARGET KEY CERT     every setup request again on a running exec channel
"""
import asyncio
import json
import sys

import asyncssh
from asyncssh.packet import Boolean, String, UInt32


async def asyncssh_many(common, n):
    async with asyncssh.connect(**common) as conn:
        concurrent = await asyncio.gather(*(conn.run(f"echo c{i}", check=False) for i in range(n)))
        sequential = [await conn.run(f"echo s{i}", check=False) for i in range(n)]
    def show(result):
        return {"exit_status": result.exit_status, "stdout": result.stdout, "stderr": result.stderr}
    return {"concurrent": [show(r) for r in concurrent], "sequential": [show(r) for r in sequential]}


async def live_requests(common):
    async with asyncssh.connect(**common) as conn:
        chan, _ = await conn.create_session(asyncssh.SSHClientSession, "sleep 3", encoding=None)
        await asyncio.sleep(0.5)
        replies = {
            "exec": await chan._make_request(b"exec", String("echo second")),
            "shell": await chan._make_request(b"shell"),
            "subsystem": await chan._make_request(b"subsystem", String("sftp")),
            "pty-req": await chan._make_request(b"pty-req", String("xterm"), UInt32(80), UInt32(24), UInt32(0), UInt32(0), String(b"")),
            "x11-req": await chan._make_request(b"x11-req", Boolean(False), String("MIT-MAGIC-COOKIE-1"), String("00" * 16), UInt32(0)),
            "env": await chan._make_request(b"env", String("GATEHOUSE_TEST"), String("late")),
            "auth-agent-req": await chan._make_request(b"auth-agent-req@openssh.com"),
            "unknown": await chan._make_request(b"frobnicate@example.com", String("x")),
        }
        await chan.wait_closed()
        return {"replies": replies, "exit_status": chan.get_exit_status()}


def paramiko_many(port, target, key_path, cert_path, n):
    import paramiko
    key = paramiko.Ed25519Key.from_private_key_file(key_path)
    key.load_certificate(cert_path)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect("127.0.0.1", port=port, username=target, pkey=key, look_for_keys=False, allow_agent=False)
    results = []
    try:
        for i in range(n):
            _, stdout, stderr = client.exec_command(f"echo p{i}")
            results.append({"stdout": stdout.read().decode(), "stderr": stderr.read().decode(),
                            "exit_status": stdout.channel.recv_exit_status()})
    finally:
        client.close()
    return {"results": results}


def main():
    mode, port, target, key_path, cert_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    if mode == "paramiko-many":
        print(json.dumps(paramiko_many(port, target, key_path, cert_path, int(sys.argv[6]))))
        return
    key = asyncssh.read_private_key(key_path)
    cert = asyncssh.read_certificate(cert_path)
    common = dict(host="127.0.0.1", port=port, username=target, known_hosts=None, client_keys=[(key, cert)])
    if mode == "asyncssh-many":
        print(json.dumps(asyncio.run(asyncssh_many(common, int(sys.argv[6])))))
    elif mode == "live-requests":
        print(json.dumps(asyncio.run(live_requests(common))))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
