"""Presence across real daemons on one Redis and one PostgreSQL: a daemon killed with SIGKILL
never says its users left, so a surviving daemon's heartbeat sweeper must."""

import asyncio
import time
from datetime import UTC, datetime

import pytest
import websockets

from tests.support.postgres import throwaway_postgres
from tests.support.twistd import Daemon, create_users_with_tokens, daemon_env, unix_socket_accepts

from .test_cluster import ORIGIN, Device

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.postgres,
]

THRESHOLD = 3  # INACTIVITY_THRESHOLD: a dead daemon's sessions are swept this long after
SWEEP_EVERY = 0.5  # --heartbeat-interval
HEARTBEAT_EVERY = 1.0  # what the test's clients send, well within the threshold


@pytest.fixture
def database():
    with throwaway_postgres("chatserver-presence-pg-", max_connections=100) as cluster:
        yield cluster.url("chatserver")


@pytest.fixture
def daemons(tmp_path, database, redis_url):
    """Two daemons, A and B, sharing Redis and PostgreSQL; users ursula and sam."""
    env = daemon_env(
        tmp_path / "state",
        redis_url,
        DATABASE_URL=database,
        CHATSERVER_INACTIVITY_THRESHOLD=THRESHOLD,
    )
    users = create_users_with_tokens(env, "ursula", "sam")
    started = []
    try:
        for name in ("a", "b"):
            workdir = tmp_path / name
            workdir.mkdir()
            sock = tmp_path / f"{name}.sock"
            args = ["--socket", str(sock), "--no-migrate", "--heartbeat-interval", str(SWEEP_EVERY)]
            started.append((Daemon(args, env, workdir), sock))
            started[-1][0].start(ready=unix_socket_accepts(sock))
        yield started, users
    finally:
        for daemon, _ in started:
            daemon.kill()


class Client(Device):
    """A device that sends heartbeats, as every client must."""

    def __init__(self, name, ws):
        super().__init__(name, ws)
        self.beats = asyncio.ensure_future(self._beat())

    async def _beat(self):
        try:
            while True:
                await self.send("session.heartbeat")
                await asyncio.sleep(HEARTBEAT_EVERY)
        except websockets.ConnectionClosed:
            pass

    async def close(self):
        self.beats.cancel()
        await super().close()


async def connect(sock, name, user):
    ws = await websockets.unix_connect(
        str(sock), f"ws://localhost/messaging/?token={user['token']}", origin=ORIGIN
    )
    return Client(name, ws)


def presence_of(user_id, status):
    def matches(frame):
        return frame.get("eventType") == "presence.dispatch" and any(
            entry["user_id"] == user_id and entry["status"] == status
            for entry in frame["data"]["users"]
        )

    return matches


def entry_of(frame, user_id):
    return next(e for e in frame["data"]["users"] if e["user_id"] == user_id)


async def test_a_killed_daemons_users_go_offline_for_subscribers_elsewhere(daemons):
    (daemon_a, sock_a), (daemon_b, sock_b) = daemons[0]
    users = daemons[1]
    ursula_id = users["ursula"]["id"]
    sam = await connect(sock_b, "sam", users["sam"])
    ursula = await connect(sock_a, "ursula", users["ursula"])  # only on daemon A
    devices = [sam, ursula]
    try:
        await sam.ok("room.create", {"type": "direct", "members": [ursula_id]})
        start = len(sam.frames)
        reply = await sam.ok("presence.subscribe", {})
        if entry_of(reply, ursula_id)["status"] != "online":
            await sam.wait_for(presence_of(ursula_id, "online"), start=start)

        daemon_a.process.kill()  # SIGKILL by PID: daemon A says nothing more
        daemon_a.process.wait()
        killed_at = time.monotonic()
        start = len(sam.frames)
        offline = await sam.wait_for(presence_of(ursula_id, "offline"), timeout=60, start=start)
        # Within the threshold plus a sweep and a flush; generous on a shared machine.
        assert time.monotonic() - killed_at < 60
        last_seen = datetime.fromisoformat(entry_of(offline, ursula_id)["last_seen"])
        assert last_seen <= datetime.now(UTC)

        # A subscription that starts now reads the same from the database.
        later = await connect(sock_b, "sam-2", users["sam"])
        devices.append(later)
        again = await later.ok("presence.subscribe", {})
        assert entry_of(again, ursula_id) == entry_of(offline, ursula_id)
        assert "Traceback" not in daemon_b.log(), daemon_b.log()
    finally:
        await asyncio.gather(*(d.close() for d in devices), return_exceptions=True)
