"""systemd's Type=notify protocol, spoken by a real twistd to a socket the test binds."""

import os
import socket

import pytest

from chatserver.daemon.systemd_notify import Notifier, watchdog_interval
from tests.support.redis import RedisServer
from tests.support.twistd import Daemon, create_users_with_tokens, daemon_env, unix_socket_accepts

from .notify_socket import NotifySocket
from .test_end_to_end import closed_code, next_event, request, unix_client

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def notify_socket(tmp_path):
    listener = NotifySocket(tmp_path / "notify")
    yield listener
    listener.close()


async def test_ready_waits_for_listeners_and_redis_then_watchdog_status_and_stopping(
    tmp_path, notify_socket
):
    redis_server = RedisServer(tmp_path)  # its port is chosen, the server not started yet
    state = tmp_path / "state"
    state.mkdir()
    env = daemon_env(
        state, redis_server.url, NOTIFY_SOCKET=notify_socket.path, WATCHDOG_USEC=400_000
    )
    sock = tmp_path / "chat.sock"
    users = create_users_with_tokens(env, "alice", "bob")
    daemon = Daemon(["--socket", str(sock), "--no-migrate"], env, tmp_path).start()
    try:
        # Listening, but Redis does not answer: not ready, and the status says why.
        waiting = notify_socket.wait_for(lambda m: "redis" in m.get("STATUS", ""))
        assert waiting["STATUS"].startswith("waiting for redis:"), waiting
        assert unix_socket_accepts(sock)()
        assert not any("READY" in m for m in notify_socket.messages)

        redis_server.start()
        accepted_when_ready = []

        def note_whether_accepting(message):
            if "READY" in message:
                accepted_when_ready.append(unix_socket_accepts(sock)())

        ready = notify_socket.wait_for(
            lambda m: m.get("READY") == "1", on_each=note_whether_accepting
        )
        assert accepted_when_ready == [True]
        assert ready["STATUS"] == "serving 0 WebSockets in 0 rooms"

        # WATCHDOG_USEC=0.4 s: a ping every 0.2 s from the reactor, for as long as it runs.
        for _ in range(3):
            notify_socket.wait_for(lambda m: m.get("WATCHDOG") == "1", timeout=30)

        # Two users in one room: the status counts their sockets and the room.
        async with (
            unix_client(sock, users["alice"]["token"]) as alice,
            unix_client(sock, users["bob"]["token"]) as bob,
        ):
            room = {"type": "group", "name": "status", "members": [users["bob"]["id"]]}
            await request(alice, "room.create", room)
            await next_event(bob, "roomcreate.dispatch")
            daemon.signal_term()
            stopping = notify_socket.wait_for(lambda m: m.get("STOPPING") == "1")
            assert stopping["STATUS"] == "stopping: draining 2 WebSockets in 1 room"
            assert await closed_code(alice) == 1001
        daemon.stop_cleanly()
    finally:
        daemon.kill()
        redis_server.stop()


def test_embedded_defaults_are_ready_without_redis_and_pid_mismatch_means_no_watchdog(
    tmp_path, notify_socket
):
    env = daemon_env(tmp_path / "state", NOTIFY_SOCKET=notify_socket.path)
    env.pop("REDIS_URL", None)
    env.update(WATCHDOG_USEC="200000", WATCHDOG_PID="1")  # a watchdog meant for another process
    daemon = Daemon(["--port", "0"], env, tmp_path).start()
    try:
        notify_socket.wait_for(lambda m: m.get("READY") == "1")
        daemon.signal_term()
        notify_socket.wait_for(lambda m: m.get("STOPPING") == "1")
        daemon.stop_cleanly()
    finally:
        daemon.kill()
    assert not any("WATCHDOG" in m for m in notify_socket.messages), notify_socket.messages


def test_notifier_speaks_to_an_abstract_socket():
    name = f"chatserver-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        receiver.settimeout(10)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.send(READY=1, STATUS="up")
        assert receiver.recv(4096) == b"READY=1\nSTATUS=up"
        notifier.close()


def test_notifier_without_notify_socket_does_nothing_and_never_raises(tmp_path):
    assert not Notifier({}).send(READY=1)
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert gone.enabled and not gone.send(READY=1)


def test_watchdog_interval():
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, pid=7) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"}, pid=7) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
