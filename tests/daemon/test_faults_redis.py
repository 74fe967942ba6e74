"""Redis paused for 5 s, or killed and restarted empty, under traffic: the daemon stays up,
every send is stored and answered, broadcasts resume within seconds of Redis returning, and
after session.resume every member has every message exactly once, in seq order.

PostgreSQL only (the database is the source of truth here): marked ``postgres``."""

import asyncio
import os
import signal
import time

import pytest

from tests.support.redis import RedisServer
from tests.support.twistd import Daemon, create_users_with_tokens, daemon_env, unix_socket_accepts

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

DATABASE_URL = os.environ.get("DATABASE_URL", "")

pytestmark = [pytest.mark.timeout(180), pytest.mark.postgres, pytest.mark.slow]

NAMES = ("alice", "bob", "carol")


@pytest.fixture
def redis_server(tmp_path):
    """A redis-server of this test's own, which the test stops or kills."""
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def restart_empty(server):
    """kill -9, then a new redis-server on the same port with an empty dataset."""
    server.process.kill()
    server.process.wait()
    fresh = RedisServer(server.workdir)
    fresh.port = server.port
    return fresh.start()


async def run_fault(tmp_path, redis_server, fault):
    """Traffic, ``fault(redis_server)`` (async; returns the server Redis runs as afterwards),
    more traffic until every member receives broadcasts live again, then the checks."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    env = daemon_env(
        state_dir, redis_server.url, DJANGO_SETTINGS_MODULE="tests.daemon.fault_settings"
    )
    users = create_users_with_tokens(env, *NAMES)
    sock = tmp_path / "chat.sock"
    daemon = Daemon(["--socket", str(sock)], env, tmp_path).start(unix_socket_accepts(sock))
    servers = [redis_server]
    try:
        room_id = await open_room(sock, users, NAMES)
        members = await join(sock, users, NAMES, room_id)
        stop = asyncio.Event()
        traffic = asyncio.ensure_future(send_traffic(members, stop, time.monotonic() + 120))
        await wait_until(lambda: acknowledged(members) >= 6, traffic)

        during = acknowledged(members)
        servers.append(await fault(redis_server))
        during = acknowledged(members) - during
        back = max(max(member.frames, default=0) for member in members)

        # Broadcasts work again: each member receives, live, a message sent after Redis is back.
        def everyone_hears_new_messages():
            return all(
                any(seq > back and member.live[seq] for seq in member.frames)
                and any(seq > back for seq in member.acknowledged.values())
                for member in members
            )

        started = time.monotonic()
        await wait_until(everyone_hears_new_messages, traffic, timeout=60)
        recovered = time.monotonic() - started
        stop.set()
        await asyncio.wait_for(traffic, 60)
        assert daemon.process.poll() is None  # the daemon stayed up
        assert all(member.closed is None for member in members)  # and every socket open

        stored = stored_messages(DATABASE_URL, room_id)
        added = {}
        for member in members:
            added[member.name], last_seq = await member.catch_up()
        check_everyone_has_everything(members, stored, last_seq)
        print(
            f"stored {len(stored)}, {during} answered during the fault, broadcasts back "
            f"{recovered:.1f} s after, resume added {added}"
        )
        for member in members:
            await member.close()
        stop_cleanly(daemon, "redis.exceptions.ConnectionError")
        return during
    finally:
        daemon.kill()
        for server in servers:
            server.stop()


async def test_redis_paused_for_five_seconds(tmp_path, redis_server):
    async def pause(server):
        server.process.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(5)  # the fault is the pause itself
        finally:
            server.process.send_signal(signal.SIGCONT)
        return server

    during = await run_fault(tmp_path, redis_server, pause)
    assert during > 0  # sends were stored and answered while Redis did not answer


async def test_redis_killed_and_restarted_empty(tmp_path, redis_server):
    async def kill_and_restart(server):
        fresh = await asyncio.to_thread(restart_empty, server)
        await asyncio.sleep(1)  # traffic meets the new, empty Redis
        return fresh

    await run_fault(tmp_path, redis_server, kill_and_restart)
