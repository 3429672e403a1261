#!/usr/bin/env python3
"""Plain TCP helpers for the forwarding tests (standard library only).

  tcp.py echo PORT                 serve on 127.0.0.1:PORT, echo each connection back until EOF
  tcp.py send PORT MESSAGE         connect to 127.0.0.1:PORT, send MESSAGE, half-close, print the answer
  tcp.py socks5 PROXY HOST PORT MESSAGE
                                   the same through a SOCKS5 proxy on 127.0.0.1:PROXY (ssh -D)
"""
import socket
import struct
import sys
import threading


def echo(port):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(16)

    def serve(conn):
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)

    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def exchange(sock, message):
    sock.sendall(message.encode())
    sock.shutdown(socket.SHUT_WR)
    answer = b""
    while True:
        data = sock.recv(65536)
        if not data:
            break
        answer += data
    sys.stdout.write(answer.decode(errors="replace"))


def send(port, message):
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        exchange(sock, message)


def socks5(proxy, host, port, message):
    with socket.create_connection(("127.0.0.1", proxy), timeout=20) as sock:
        sock.sendall(b"\x05\x01\x00")
        if sock.recv(2) != b"\x05\x00":
            sys.exit("socks5: no acceptable authentication method")
        address = host.encode()
        sock.sendall(b"\x05\x01\x00\x03" + bytes([len(address)]) + address + struct.pack(">H", port))
        reply = sock.recv(10)
        if len(reply) < 2 or reply[1] != 0:
            sys.exit(f"socks5: connect refused (reply {reply[1] if len(reply) > 1 else '?'})")
        exchange(sock, message)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "echo":
        echo(int(args[0]))
    elif mode == "send":
        send(int(args[0]), args[1])
    elif mode == "socks5":
        socks5(int(args[0]), args[1], int(args[2]), args[3])
    else:
        sys.exit(f"unknown mode {mode}")
