#!/usr/bin/env python3
"""A Python SSH client (asyncssh) against Gatehouse, for the Swift tests.

Each mode prints one JSON object on stdout describing what the client saw, so the test asserts
on facts rather than on this script's own judgement.
"""
import asyncio
import json
import sys

import asyncssh


async def main() -> None:
    mode, port, target = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    common = dict(host="127.0.0.1", port=port, username=target, known_hosts=None)
    if mode == "password":
        # A password login must be refused: Gatehouse accepts certificates only.
        try:
            async with asyncssh.connect(**common, password="hunter2", client_keys=None, preferred_auth="password"):
                print(json.dumps({"connected": True}))
        except asyncssh.PermissionDenied as error:
            print(json.dumps({"connected": False, "error": "permission-denied", "reason": str(error)}))
        return
    if mode == "kbdint":
        try:
            async with asyncssh.connect(**common, password="hunter2", client_keys=None, preferred_auth="keyboard-interactive"):
                print(json.dumps({"connected": True}))
        except asyncssh.PermissionDenied as error:
            print(json.dumps({"connected": False, "error": "permission-denied", "reason": str(error)}))
        return
    key_path, cert_path = sys.argv[4], sys.argv[5]
    key = asyncssh.read_private_key(key_path)
    cert = asyncssh.read_certificate(cert_path)
    async with asyncssh.connect(**common, client_keys=[(key, cert)]) as conn:
        if mode == "exec":
            command = sys.argv[6]
            result = await conn.run(command, check=False, encoding=None, input=sys.stdin.buffer.read())
            print(json.dumps({"exit_status": result.exit_status, "exit_signal": result.exit_signal[0] if result.exit_signal else None,
                              "stdout": result.stdout.hex(), "stderr": result.stderr.hex()}))
        elif mode == "signal":
            # Send TERM to a running command; the target's process must die of it.
            process = await conn.create_process("sleep 30", encoding=None)
            await asyncio.sleep(0.5)
            process.send_signal("TERM")
            result = await asyncio.wait_for(process.wait(check=False), 20)
            print(json.dumps({"exit_status": result.exit_status, "exit_signal": result.exit_signal[0] if result.exit_signal else None}))
        elif mode == "pty-size":
            result = await conn.run("sh -c 'stty size'", term_type="xterm-256color", term_size=(132, 43), check=False)
            print(json.dumps({"exit_status": result.exit_status, "stdout": result.stdout}))


asyncio.run(main())
