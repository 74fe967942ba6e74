"""Plain HTTP/1.1 requests to the daemon over a Unix socket or TCP (health endpoints)."""

import asyncio
import json
import socket


def parse_response(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body) if body.startswith(b"{") else body


def request_bytes(target, method="GET"):
    return f"{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()


def get(address, target, timeout=10):
    """(status, JSON body) of one GET; ``address`` is a socket path or a (host, port)."""
    family = socket.AF_INET if isinstance(address, tuple) else socket.AF_UNIX
    with socket.socket(family) as conn:
        conn.settimeout(timeout)
        conn.connect(address if isinstance(address, tuple) else str(address))
        conn.sendall(request_bytes(target))
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return parse_response(b"".join(chunks))


def answers(address, target="/healthz"):
    """A readiness check for Daemon.start: the daemon answers ``target`` with 200."""

    def check():
        try:
            return get(address, target, timeout=1)[0] == 200
        except (OSError, ValueError, IndexError):
            return False

    return check


async def get_async(path, target, timeout=60):
    """The same over a Unix socket, without blocking the event loop."""
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), timeout)
    try:
        writer.write(request_bytes(target))
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    return parse_response(raw)
