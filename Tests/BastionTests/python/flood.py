#!/usr/bin/env python3
"""A connection flood from other loopback sources, for the admission tests.

  flood.py PORT IDLE GARBAGE SOURCES

Opens IDLE connections that never send a byte and GARBAGE connections that send junk instead
of an SSH banner, spread over 127.0.0.2 … 127.0.0.(SOURCES+1), prints "ready" and holds them
(re-opening what the server closes) until stdin closes. Loopback only; bounded in count and time.
"""
import os
import selectors
import socket
import sys
import time

port, idle, garbage, sources = (int(a) for a in sys.argv[1:5])
deadline = time.monotonic() + 120
sel = selectors.DefaultSelector()
sel.register(sys.stdin, selectors.EVENT_READ, "stdin")


def open_one(i, junk):
    s = socket.socket()
    s.setblocking(False)
    s.bind((f"127.0.0.{2 + i % sources}", 0))
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    sel.register(s, selectors.EVENT_READ, (i, junk))
    if junk:
        try:
            s.send(b"GET / HTTP/1.0\r\n\r\n" * 4)
        except OSError:
            pass
    return s


for i in range(idle):
    open_one(i, False)
for i in range(garbage):
    open_one(i, True)
print("ready", flush=True)
reopened = 0
while time.monotonic() < deadline:
    for key, _ in sel.select(timeout=0.5):
        if key.data == "stdin":
            if not sys.stdin.readline():
                sys.exit(0)
            continue
        sock = key.fileobj
        try:
            data = sock.recv(4096)
        except OSError:
            data = b""
        if not data:
            sel.unregister(sock)
            sock.close()
            i, junk = key.data
            if reopened < 5000:
                reopened += 1
                open_one(i, junk)
