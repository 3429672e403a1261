#!/usr/bin/env python3
"""Runs the hostile exec corpus (Tests/PolicyTests/hostile-commands.txt) through a live Gatehouse
with asyncssh, sending each exec string as raw bytes (NULs, invalid UTF-8 and 1 MiB included),
one connection per command. Prints one JSON object per corpus line: what the client saw."""
import asyncio
import json
import sys

import asyncssh


def unescape(text: str) -> bytes:
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\" or i + 1 >= len(text):
            out += c.encode()
            i += 1
            continue
        n = text[i + 1]
        if n == "n": out.append(0x0A); i += 2
        elif n == "t": out.append(0x09); i += 2
        elif n == "r": out.append(0x0D); i += 2
        elif n == "\\": out.append(0x5C); i += 2
        elif n == "x": out.append(int(text[i + 2:i + 4], 16)); i += 4
        elif n == "u": out += chr(int(text[i + 2:i + 6], 16)).encode(); i += 6
        else: out += c.encode(); i += 1
    return bytes(out)


async def run_one(port, key, cert, code, command, limit):
    async with limit:
        try:
            async with asyncssh.connect("127.0.0.1", port=port, username="web-01", known_hosts=None,
                                        client_keys=[(key, cert)], encoding=None) as conn:
                result = await asyncio.wait_for(conn.run(command, check=False), 30)
                denial = None
                for line in result.stderr.split(b"\n"):
                    if line.startswith(b"gatehouse-denial: "):
                        denial = json.loads(line[len(b"gatehouse-denial: "):])
                return {"code": code, "exit_status": result.exit_status, "denial": denial, "transport_error": None}
        except (asyncssh.Error, OSError, asyncio.TimeoutError) as error:
            return {"code": code, "exit_status": None, "denial": None, "transport_error": f"{type(error).__name__}: {error}"}


async def main():
    port, key_path, cert_path, corpus = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    key = asyncssh.read_private_key(key_path)
    cert = asyncssh.read_certificate(cert_path)
    entries = []
    for line in open(corpus, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        code, _, escaped = line.partition("\t")
        entries.append((code, unescape(escaped)))
    limit = asyncio.Semaphore(8)
    results = await asyncio.gather(*(run_one(port, key, cert, code, command, limit) for code, command in entries))
    print(json.dumps(results))


asyncio.run(main())
