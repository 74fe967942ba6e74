"""Admission control: the listening sockets stop reading while ``--max-handshakes`` connections
await their first answer, and read again once they are answered or gone."""

import asyncio
import select
import signal
import socket
import time
import urllib.request

import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from chatserver.daemon.admission import HandshakeAdmission
from tests.support.processes import free_port
from tests.support.redis import RedisServer
from tests.support.twistd import Daemon, create_users_with_tokens, daemon_env

from . import http_probe
from .clients import closed_code, request, unix_client

# -- the counting, with ports that record what they were told ----------------------------------


class RecordingPort:
    """What admission control touches of a Twisted listening port."""

    def __init__(self):
        self.reading = True
        self.connected = True
        self.numberAccepts = 100

    def stopReading(self):  # noqa: N802 - Twisted's method name
        self.reading = False

    def startReading(self):  # noqa: N802 - Twisted's method name
        self.reading = True


def test_ports_stop_reading_at_the_limit_and_read_again_at_three_quarters():
    admission = HandshakeAdmission(8)
    ports = [RecordingPort(), RecordingPort()]
    for port in ports:
        admission.add_port(port)
    connections = [object() for _ in range(8)]
    for connection in connections[:7]:
        admission.admit(connection)
    assert all(port.reading for port in ports) and admission.in_flight == 7
    admission.admit(connections[7])
    assert not any(port.reading for port in ports) and admission.pauses == 1

    admission.answered(connections[0])
    assert not any(port.reading for port in ports)  # 7 in flight: above 3/4 of 8
    admission.answered(connections[0])  # a second answer for the same connection: no effect
    assert admission.in_flight == 7
    admission.answered(connections[1])
    assert all(port.reading for port in ports) and admission.in_flight == 6


def test_accept_batches_are_capped_at_the_room_left():
    admission = HandshakeAdmission(10)
    port = RecordingPort()
    admission.add_port(port)
    for _ in range(7):
        admission.admit(object())
    assert port.numberAccepts == 3


def test_a_port_added_while_paused_waits_and_a_removed_one_is_not_restarted():
    admission = HandshakeAdmission(1)
    first, second = RecordingPort(), RecordingPort()
    admission.add_port(first)
    connection = object()
    admission.admit(connection)
    admission.add_port(second)
    assert not first.reading and not second.reading
    admission.remove_port(first)
    admission.answered(connection)
    assert second.reading and not first.reading


def test_a_closed_port_is_not_read_again():
    admission = HandshakeAdmission(1)
    port = RecordingPort()
    admission.add_port(port)
    connection = object()
    admission.admit(connection)
    port.connected = False  # lost its socket while paused
    admission.answered(connection)
    assert not port.reading


# -- a real daemon -----------------------------------------------------------------------------


def connection(path, request=b""):
    """A connection to the daemon's Unix socket that has sent ``request`` (maybe nothing)."""
    conn = socket.socket(socket.AF_UNIX)
    conn.connect(str(path))
    if request:
        conn.sendall(request)
    return conn


def receives_answer(conn, timeout):
    conn.settimeout(timeout)
    try:
        return conn.recv(4096)
    except TimeoutError:
        return None


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def wait_for_metric(port, name, value, timeout=10):
    deadline = time.monotonic() + timeout
    while (seen := scrape(port)[name]) != value:
        assert time.monotonic() < deadline, f"{name} is {seen}, not {value}"
        await asyncio.sleep(0.05)


@pytest.mark.timeout(120)
async def test_the_daemon_holds_connections_in_the_backlog_past_the_limit(tmp_path):
    redis_server = RedisServer(tmp_path).start()
    env = daemon_env(tmp_path / "state", redis_server.url)
    alice = create_users_with_tokens(env, "alice")["alice"]
    sock, metrics = tmp_path / "chat.sock", free_port()
    args = ["--socket", str(sock), "--max-handshakes", "2", "--metrics", str(metrics)]
    daemon = Daemon(args, env, tmp_path)
    held = []
    try:
        daemon.start(http_probe.answers(sock))
        # Answered connections do not count: open WebSockets, refused ones, kept-alive HTTP.
        async with unix_client(sock, alice["token"]) as first, unix_client(sock, alice["token"]):
            assert (await request(first, "room.list"))["eventType"] != "error"
            async with unix_client(sock, "not-a-token") as anonymous:
                assert await closed_code(anonymous) == 4001
            for _ in range(3):  # the origin check refuses the handshake itself (403)
                with pytest.raises(websockets.InvalidStatus):
                    async with websockets.unix_connect(
                        str(sock), "ws://localhost/messaging/", origin="http://evil.example"
                    ):
                        pass
            kept_alive = connection(sock, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            held.append(kept_alive)
            assert receives_answer(kept_alive, 10).startswith(b"HTTP/1.1 200")
            # Nor do connections that sent nothing, or only part of a request.
            held += [connection(sock) for _ in range(3)]
            held.append(
                connection(sock, b"POST /api/token/ HTTP/1.1\r\nContent-Length: 9\r\n\r\n{")
            )
            assert http_probe.get(sock, "/healthz")[0] == 200
            assert scrape(metrics)["chatserver_handshakes_in_flight"] == 0

            # Two requests awaiting their answer (/readyz waits 2 s for a stopped Redis): a
            # third connection waits in the backlog, unanswered, until one of them is answered.
            redis_server.process.send_signal(signal.SIGSTOP)
            slow = [connection(sock, http_probe.request_bytes("/readyz")) for _ in range(2)]
            await wait_for_metric(metrics, "chatserver_handshakes_in_flight", 2)
            waiting = connection(sock, http_probe.request_bytes("/healthz"))
            held += [*slow, waiting]
            readable, _, _ = select.select([waiting, *slow], [], [], 30)
            assert waiting not in readable and readable, "answered before the slow requests"
            assert receives_answer(waiting, 10).startswith(b"HTTP/1.1 200")
            assert all(receives_answer(conn, 10).startswith(b"HTTP/1.1 503") for conn in slow)
            assert scrape(metrics)["chatserver_accept_pauses_total"] >= 1
            redis_server.process.send_signal(signal.SIGCONT)
        daemon.stop_cleanly()
    finally:
        for conn in held:
            conn.close()
        redis_server.process.send_signal(signal.SIGCONT)
        daemon.kill()
        redis_server.stop()
