"""/healthz and /readyz on a real daemon: Redis stops and comes back, and the drain on SIGTERM."""

import base64
import os
import socket
import subprocess
import time

import pytest

from tests.support.redis import RedisServer
from tests.support.twistd import Daemon, daemon_env

from . import http_probe

pytestmark = pytest.mark.timeout(120)


def wait_for_status(address, target, status, timeout=30):
    """Poll until ``target`` answers ``status``; return the JSON body."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = http_probe.get(address, target)
        if seen[0] == status:
            return seen[1]
        time.sleep(0.1)
    raise AssertionError(f"{target} did not answer {status} within {timeout}s; last: {seen}")


def test_readyz_follows_redis_and_healthz_does_not(tmp_path):
    redis_server = RedisServer(tmp_path).start()
    env = daemon_env(tmp_path / "state", redis_server.url)
    sock = tmp_path / "chat.sock"
    daemon = Daemon(["--socket", str(sock)], env, tmp_path)
    try:
        daemon.start(http_probe.answers(sock))
        assert http_probe.get(sock, "/readyz") == (
            200,
            {"status": "ready", "checks": {"database": "ok", "redis": "ok"}},
        )

        redis_server.stop()  # the test's own redis-server, killed by PID
        body = wait_for_status(sock, "/readyz", 503)
        assert body["status"] == "unavailable" and body["failed"] == ["redis"], body
        assert body["checks"]["database"] == "ok"
        assert http_probe.get(sock, "/healthz") == (200, {"status": "alive"})

        redis_server.start()  # same port
        assert wait_for_status(sock, "/readyz", 200)["checks"]["redis"] == "ok"
        daemon.stop_cleanly()
    finally:
        daemon.kill()
        redis_server.stop()


def test_embedded_defaults_check_only_the_database_and_other_methods_are_refused(tmp_path):
    env = daemon_env(tmp_path / "state")
    env.pop("REDIS_URL", None)
    sock = tmp_path / "chat.sock"
    daemon = Daemon(["--socket", str(sock)], env, tmp_path)
    try:
        daemon.start(http_probe.answers(sock))
        assert http_probe.get(sock, "/readyz") == (
            200,
            {"status": "ready", "checks": {"database": "ok"}},
        )
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(str(sock))
            conn.sendall(http_probe.request_bytes("/readyz", method="POST"))
            assert conn.recv(4096).startswith(b"HTTP/1.1 405 ")
        daemon.stop_cleanly()
    finally:
        daemon.kill()


def open_silent_websocket(path, token):
    """A WebSocket client that never answers the server's close frame, so the daemon's drain
    lasts at least Autobahn's closing-handshake timeout (1 s) instead of a few milliseconds."""
    conn = socket.socket(socket.AF_UNIX)
    conn.settimeout(10)
    conn.connect(str(path))
    key = base64.b64encode(os.urandom(16)).decode()
    conn.sendall(
        (
            f"GET /messaging/?token={token} HTTP/1.1\r\nHost: localhost\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nOrigin: http://localhost\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert conn.recv(4096).startswith(b"HTTP/1.1 101 ")
    return conn


def keep_alive_get(conn, target):
    """One GET on a persistent HTTP/1.1 connection; (status, raw body) or None once closed."""
    conn.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.lower().split(b"\r\n")
                      if line.startswith(b"content-length:")))  # fmt: skip
    while len(body) < length:
        body += conn.recv(4096)
    return int(head.split(b" ", 2)[1]), body


def test_readyz_answers_503_while_draining(tmp_path, redis_env, users):
    sock = tmp_path / "chat.sock"
    daemon = Daemon(["--socket", str(sock), "--no-migrate"], redis_env, tmp_path)
    try:
        daemon.start(http_probe.answers(sock))
        silent = open_silent_websocket(sock, users["alice"]["token"])
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(10)
            conn.connect(str(sock))
            assert keep_alive_get(conn, "/readyz")[0] == 200
            daemon.signal_term()  # the listener closes, this connection stays until exit
            answers = []
            while (answer := keep_alive_get(conn, "/readyz")) is not None:
                answers.append(answer)
                if answer[0] == 503:
                    break
        assert answers and answers[-1][0] == 503, answers
        assert b'"draining"' in answers[-1][1]
        silent.close()
        daemon.stop_cleanly()
    finally:
        daemon.kill()


def test_the_same_endpoints_under_plain_uvicorn(tmp_path, redis_env):
    """The health endpoints live in the ASGI application, not in the daemon."""
    from tests.support.twistd import BIN, REPO, manage

    manage(redis_env, "migrate", "--noinput", "-v", "0")
    sock = tmp_path / "asgi.sock"
    argv = [BIN / "uvicorn", "--uds", sock, "--lifespan", "off", "chatserver.asgi:application"]
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [str(arg) for arg in argv], env=redis_env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while not http_probe.answers(sock)() and time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            time.sleep(0.1)
        assert http_probe.get(sock, "/readyz") == (
            200,
            {"status": "ready", "checks": {"database": "ok", "redis": "ok"}},
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
