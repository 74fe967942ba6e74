"""PostgreSQL restarted under traffic: senders get 4503 and resend, nothing is lost or doubled,
and the daemon reconnects by itself (no restart, sockets stay open)."""

import asyncio
import time
from collections import Counter

import psycopg
import pytest
import websockets

from chatserver.chat.protocol import CLOSE_HEARTBEAT_EXPIRED, ERROR_UNAVAILABLE
from chatserver.chat.storage.loop_connection import APPLICATION_NAME
from tests.support.postgres import throwaway_postgres
from tests.support.twistd import Daemon, create_users_with_tokens, daemon_env, unix_socket_accepts

from .clients import closed_code, unix_client
from .traffic import (
    acknowledged,
    check_everyone_has_everything,
    join,
    open_room,
    send_traffic,
    stop_cleanly,
    stored_messages,
    wait_until,
)

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.postgres,
    pytest.mark.slow,
]

NAMES = ("alice", "bob", "carol")


@pytest.fixture
def cluster():
    """A PostgreSQL cluster of this test's own, which the test restarts (in a directory of its
    own: pytest's are private to root, and the cluster runs as ``postgres`` under root)."""
    with throwaway_postgres("chatserver-faults-", max_connections=50) as postgres:
        yield postgres


def restart(cluster):
    """``pg_ctl restart -m fast``: every connection is terminated (AdminShutdown)."""
    log = str(cluster.root / "postgres.log")  # else the new server holds pg_ctl's stdout
    cluster._run(
        [
            "pg_ctl",
            "-D",
            str(cluster.datadir),
            "-l",
            log,
            "-m",
            "fast",
            "-w",
            "-t",
            "60",
            "restart",
        ],
        timeout=90,
    )


def loop_connections(database_url):
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            [APPLICATION_NAME],
        ).fetchone()[0]


async def test_postgres_restart_under_traffic(tmp_path, cluster, redis_url):
    database_url = cluster.url("chatserver")
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    env = daemon_env(
        state_dir,
        redis_url,
        DATABASE_URL=database_url,
        CHATSERVER_INACTIVITY_THRESHOLD=4,
        DJANGO_SETTINGS_MODULE="tests.daemon.fault_settings",  # no send rate limit
    )
    users = create_users_with_tokens(env, *NAMES)
    sock = tmp_path / "chat.sock"
    # The sweeper runs every half second and closes sockets silent for 4 s: it must keep
    # working across the restart, and the members' heartbeats keep them open.
    args = ["--socket", str(sock), "--heartbeat-interval", "0.5"]
    daemon = Daemon(args, env, tmp_path).start(unix_socket_accepts(sock))
    members = []
    try:
        room_id = await open_room(sock, users, NAMES)
        members = await join(sock, users, NAMES, room_id)
        for member in members:
            member.keep_alive(1)
        stop = asyncio.Event()
        # About 60 sends a second: the restart (about 0.3 s) cannot fall between two of them.
        traffic = asyncio.ensure_future(
            send_traffic(members, stop, time.monotonic() + 120, pause=0.05)
        )

        await wait_until(lambda: acknowledged(members) >= 6, traffic)
        before = acknowledged(members)
        await asyncio.to_thread(restart, cluster)
        # Traffic goes on after the restart: the daemon reconnects by itself.
        await wait_until(lambda: acknowledged(members) >= before + 30, traffic)
        stop.set()
        await asyncio.wait_for(traffic, 60)

        errors = sum((member.errors for member in members), start=Counter())
        print(f"acknowledged {acknowledged(members)}, errors {dict(errors)}")
        assert errors[ERROR_UNAVAILABLE] >= 1, errors  # the restart did hit sends in flight
        assert all(member.closed is None for member in members)  # every socket stayed open
        assert loop_connections(database_url) == 1  # the event loop has its connection back

        stored = stored_messages(database_url, room_id)
        last_seqs = set()
        for member in members:
            _, last_seq = await member.catch_up()  # the database thread's connection is back
            last_seqs.add(last_seq)
        (last_seq,) = last_seqs
        check_everyone_has_everything(members, stored, last_seq)

        # The sweeper works after the restart: a socket without heartbeats is closed (4408).
        async with unix_client(sock, users["bob"]["token"]) as silent:
            assert await closed_code(silent, timeout=20) == CLOSE_HEARTBEAT_EXPIRED

        for member in members:
            await member.close()
        log = daemon.stop_cleanly()  # no traceback: nothing failed unhandled
        assert "heartbeat-sweeper failed" not in log
    finally:
        daemon.kill()


def pg_ctl(cluster, action):
    """``pg_ctl stop`` or ``start``, the latter with the options the cluster started with."""
    options = f"-k {cluster.sockdir} -c listen_addresses='' -c fsync=off -c max_connections=50"
    log = str(cluster.root / "postgres.log")
    cluster._run(
        ["pg_ctl", "-D", str(cluster.datadir), "-l", log, "-o", options, "-m", "fast", "-w"]
        + ["-t", "60", action],
        timeout=90,
    )


async def test_postgres_down_a_while(tmp_path, cluster, redis_url):
    """While PostgreSQL is stopped a send and a heartbeat are answered 4503 on an open socket
    and a new socket's handshake fails; once it is back the resend is stored, once."""
    database_url = cluster.url("chatserver")
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    env = daemon_env(state_dir, redis_url, DATABASE_URL=database_url)
    users = create_users_with_tokens(env, *NAMES)
    sock = tmp_path / "chat.sock"
    daemon = Daemon(["--socket", str(sock)], env, tmp_path).start(unix_socket_accepts(sock))
    try:
        room_id = await open_room(sock, users, NAMES)
        alice, bob = await join(sock, users, NAMES[:2], room_id)
        data = {"room_id": room_id, "content": "while down", "client_msg_id": f"{room_id}-down"}
        await asyncio.to_thread(pg_ctl, cluster, "stop")
        try:
            for event_type, payload in (("message.send", data), ("session.heartbeat", {})):
                reply = await alice.request(event_type, payload)
                assert reply["eventType"] == "error", reply
                assert reply["error"]["code"] == ERROR_UNAVAILABLE, reply
            # Its token's user is read from the database: the handshake fails (HTTP 500).
            with pytest.raises(websockets.InvalidStatus) as refused:
                await unix_client(sock, users["carol"]["token"])
            assert refused.value.response.status_code == 500
        finally:
            await asyncio.to_thread(pg_ctl, cluster, "start")
        assert alice.closed is None and bob.closed is None
        reply = await alice.request("message.send", data)
        assert reply["eventType"] == "message.dispatch", reply
        assert reply["data"]["message"].get("duplicate") is None
        await wait_until(lambda: bob.live[reply["data"]["seq"]] == 1)
        stored = stored_messages(database_url, room_id)
        assert [content for _, _, content in stored] == ["while down"]
        for member in (alice, bob):
            await member.close()
        # The refused handshake's traceback (Daphne logs it) is the only one.
        stop_cleanly(daemon, "psycopg.OperationalError", "django.db.utils.OperationalError")
    finally:
        daemon.kill()
