#!/usr/bin/env python3
"""One share of a burst of agents, for the Swift burst test: COUNT connections at once from this
process, each running one command, and a JSON summary of what completed.

  burst.py PORT KEY CERT COUNT FIRST

Several of these run side by side: one asyncio process cannot drive hundreds of handshakes
fast enough on two cores, and real agents are separate processes anyway.
"""
import asyncio
import json
import sys

import asyncssh


async def one(port, key, cert, i):
    try:
        async with asyncssh.connect("127.0.0.1", port=port, username="web-01", known_hosts=None,
                                    client_keys=[(key, cert)], login_timeout=180) as conn:
            result = await conn.run(f"echo burst-{i}", check=False)
            return result.exit_status == 0 and result.stdout == f"burst-{i}\n"
    except Exception as error:  # noqa: BLE001 - reported, not hidden
        return repr(error)


async def main():
    port, key_path, cert_path, count, first = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    key, cert = asyncssh.read_private_key(key_path), asyncssh.read_certificate(cert_path)
    results = await asyncio.wait_for(asyncio.gather(*(one(port, key, cert, first + i) for i in range(count))), 400)
    print(json.dumps({"ok": sum(1 for r in results if r is True), "errors": sorted({r for r in results if r is not True})[:5]}))


asyncio.run(main())
