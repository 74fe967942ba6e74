"""The real daemon, end to end: twistd subprocess, real redis-server, real WebSocket clients."""

import asyncio
import json
import os
import stat

import psycopg
import pytest
import redis

from chatserver.chat.storage.loop_connection import APPLICATION_NAME
from tests.support.processes import free_port
from tests.support.twistd import (
    Daemon,
    create_users_with_tokens,
    daemon_env,
    tcp_port_accepts,
    unix_socket_accepts,
)

from .clients import closed_code, next_event, request, tcp_client, unix_client

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def state_dir(tmp_path):
    path = tmp_path / "state"
    path.mkdir()
    return path


@pytest.fixture
def redis_env(state_dir, redis_url):
    return daemon_env(state_dir, redis_url)


@pytest.fixture
def users(redis_env):
    return create_users_with_tokens(redis_env, "alice", "bob")


async def exchange_broadcast(connect_alice, connect_bob, users):
    """Alice creates a room with Bob and sends; both of them get the message.dispatch."""
    async with connect_alice() as alice, connect_bob() as bob:
        created = await request(
            alice,
            "room.create",
            {"type": "group", "name": "e2e", "members": [users["bob"]["id"]]},
        )
        assert created["eventType"] == "roomcreate.dispatch", created
        room_id = created["data"]["room"]["id"]
        sent = await request(
            alice, "message.send", {"room_id": room_id, "content": "hello over the daemon"}
        )
        received = await next_event(bob, "message.dispatch")
        for frame in (sent, received):  # the sender's reply and the member's broadcast
            assert frame["eventType"] == "message.dispatch"
            assert frame["data"]["room_id"] == room_id
            assert frame["data"]["message"]["content"] == "hello over the daemon"


@pytest.mark.parametrize("layer", ["pubsub", "core"])
async def test_unix_socket_broadcast_idle_survival_and_graceful_stop(
    tmp_path, redis_env, users, layer
):
    env = dict(redis_env, CHATSERVER_CHANNEL_LAYER=layer)
    sock = tmp_path / "chat.sock"
    daemon = Daemon(["--socket", str(sock)], env, tmp_path).start(unix_socket_accepts(sock))
    try:
        mode = stat.S_IMODE(os.stat(sock).st_mode)
        assert mode == 0o660, oct(mode)

        await exchange_broadcast(
            lambda: unix_client(sock, users["alice"]["token"]),
            lambda: unix_client(sock, users["bob"]["token"]),
            users,
        )

        # An idle socket outlives redis-py's default 5 s socket timeout (the 1011 pitfall):
        # after 6.5 s of silence it still answers and still receives room broadcasts.
        async with unix_client(sock, users["bob"]["token"], ping_interval=None) as idle:
            await next_event(idle, "chat.notifications")
            await asyncio.sleep(6.5)  # the behaviour under test is idleness itself
            reply = await request(idle, "session.heartbeat")
            assert reply["eventType"] == "session.heartbeat"
            async with unix_client(sock, users["alice"]["token"]) as alice:
                rooms = await request(alice, "room.list")
                room_id = rooms["data"]["rooms"][0]["id"]
                await request(
                    alice, "message.send", {"room_id": room_id, "content": "still there?"}
                )
            received = await next_event(idle, "message.dispatch")
            assert received["data"]["message"]["content"] == "still there?"

            # SIGTERM: the open socket gets 1001, the daemon exits cleanly, the socket file goes.
            daemon.signal_term()
            assert await closed_code(idle) == 1001
        log = daemon.stop_cleanly()
        assert not sock.exists()
        if layer == "core":
            # Consumers' disconnect ran during the drain: no group membership is left in Redis.
            # (The pub/sub layer keeps none there: its subscriptions end with the connection.)
            assert redis.Redis.from_url(redis_env["REDIS_URL"]).keys("asgi:group:*") == []
        assert "WebSocket connected /messaging/" in log  # access lines reach the twistd log
    finally:
        daemon.kill()


async def test_tcp_listener_and_unauthenticated_close(tmp_path, redis_env, users):
    port = free_port()
    env = dict(redis_env, CHATSERVER_ACCESS_LOG="off")
    daemon = Daemon(["--port", str(port)], env, tmp_path).start(tcp_port_accepts(port))
    try:
        await exchange_broadcast(
            lambda: tcp_client(port, users["alice"]["token"]),
            lambda: tcp_client(port, users["bob"]["token"]),
            users,
        )
        async with tcp_client(port, "not-a-token") as anonymous:
            assert await closed_code(anonymous) == 4001
        # Over the consumer's frame limit (64 KiB) but under Daphne's: the consumer closes
        # with 1009, which Autobahn's sendClose would refuse.
        async with tcp_client(port, users["alice"]["token"], max_size=None) as greedy:
            await greedy.send(json.dumps({"event_type": "message.send", "pad": "x" * 70_000}))
            assert await closed_code(greedy) == 1009
        # Over Daphne's --max-message-size: Autobahn itself closes with 1009.
        async with tcp_client(port, users["alice"]["token"], max_size=None) as greedier:
            await greedier.send("x" * (2 * 1024 * 1024))
            assert await closed_code(greedier) == 1009
        log = daemon.stop_cleanly()
        assert "chat listening on" in log and "WebSocket connected" not in log
    finally:
        daemon.kill()


async def test_silent_socket_is_closed_by_the_sweeper(tmp_path, state_dir, redis_url):
    env = daemon_env(state_dir, redis_url, CHATSERVER_INACTIVITY_THRESHOLD=1)
    tokens = create_users_with_tokens(env, "carol")
    sock = tmp_path / "chat.sock"
    daemon = Daemon(["--socket", str(sock), "--heartbeat-interval", "0.5"], env, tmp_path)
    daemon.start(unix_socket_accepts(sock))
    try:
        async with unix_client(sock, tokens["carol"]["token"]) as silent:
            assert await closed_code(silent, timeout=10) == 4408
        daemon.stop_cleanly()
    finally:
        daemon.kill()


def test_stale_socket_from_a_crash_is_replaced(tmp_path, redis_env):
    sock = tmp_path / "chat.sock"
    first = Daemon(["--socket", str(sock)], redis_env, tmp_path).start(unix_socket_accepts(sock))
    first.kill()  # SIGKILL: the socket file and its lock stay behind
    assert sock.exists()
    second = Daemon(["--socket", str(sock)], redis_env, tmp_path)
    try:
        second.start(unix_socket_accepts(sock))
        second.stop_cleanly()
        assert not sock.exists()
    finally:
        second.kill()


async def test_connect_storm_does_not_exhaust_a_small_redis_pool(tmp_path, state_dir, redis_url):
    env = daemon_env(state_dir, redis_url, CHATSERVER_REDIS_MAX_CONNECTIONS=4)
    names = [f"storm{i}" for i in range(40)]
    users = create_users_with_tokens(env, *names)
    sock = tmp_path / "chat.sock"
    daemon = Daemon(["--socket", str(sock)], env, tmp_path).start(unix_socket_accepts(sock))
    try:

        async def connect_and_greet(name):
            async with unix_client(sock, users[name]["token"]) as ws:
                await next_event(ws, "chat.notifications", timeout=30)
                reply = await request(ws, "session.heartbeat")
                assert reply["eventType"] == "session.heartbeat"

        # 40 users x 4 devices at once: 160 group joins against a pool of 4 connections.
        await asyncio.gather(*(connect_and_greet(name) for name in names * 4))
        log = daemon.stop_cleanly()
        assert "Too many connections" not in log
    finally:
        daemon.kill()


def loop_connection_queries(database_url):
    """The last query of each connection the daemons' event loops hold, from pg_stat_activity."""
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT query FROM pg_stat_activity WHERE application_name = %s",
            [APPLICATION_NAME],
        ).fetchall()
    return [query for (query,) in rows]


@pytest.mark.postgres
async def test_the_daemon_opens_sessions_and_stores_messages_on_its_event_loop(
    tmp_path, redis_env, users
):
    database_url = os.environ["DATABASE_URL"]
    sock = tmp_path / "chat.sock"
    daemon = Daemon(["--socket", str(sock)], redis_env, tmp_path).start(unix_socket_accepts(sock))
    try:
        async with unix_client(sock, users["alice"]["token"]) as ws:
            await next_event(ws, "chat.notifications")
            (query,) = loop_connection_queries(database_url)
            assert query.startswith("WITH page")  # the connect's summary, sent by the loop
        await exchange_broadcast(
            lambda: unix_client(sock, users["alice"]["token"]),
            lambda: unix_client(sock, users["bob"]["token"]),
            users,
        )
        (query,) = loop_connection_queries(database_url)
        assert query.startswith("WITH batch")  # the one-statement insert, sent by the loop
        daemon.stop_cleanly()  # closing that connection on the way: no traceback in the log
    finally:
        daemon.kill()
