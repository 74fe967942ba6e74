"""Socket activation: the daemon adopts the Unix socket systemd passes (LISTEN_FDS), leaves the
file alone on stop, and a restart refuses no connection and loses no message.

The test plays systemd: it binds and listens on the socket itself, keeps it open for the whole
test, and hands it to each daemon as fd 3 with LISTEN_PID set to the daemon's own pid.
"""

import asyncio
import os
import socket
import stat
import sys

import pytest

from tests.support.twistd import Daemon

from . import http_probe
from .test_end_to_end import closed_code, request, unix_client

pytestmark = pytest.mark.timeout(180)

# Like systemd: the socket becomes fd 3, LISTEN_PID is the daemon's own pid (exec keeps it).
ACTIVATE = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.set_inheritable(3, True)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1", LISTEN_FDNAMES="chatserver.socket")
os.execv(sys.argv[2], sys.argv[2:])
"""


class ActivatedDaemon(Daemon):
    """``twistd chat`` started the way systemd's socket activation starts it."""

    def __init__(self, args, env, workdir, listening_socket):
        super().__init__(args, env, workdir)
        self.pass_fds = (listening_socket.fileno(),)

    def command(self):
        return [sys.executable, "-c", ACTIVATE, str(self.pass_fds[0]), *super().command()]


@pytest.fixture
def listening_socket(tmp_path):
    """What chatserver.socket makes: bound, mode 0660, listening with a deep backlog."""
    path = tmp_path / "daphne.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o660)
    sock.listen(1024)
    yield sock
    sock.close()


async def test_adopted_socket_survives_stop_and_a_restart_refuses_nothing_and_loses_nothing(
    tmp_path,
    redis_env,
    users,
    listening_socket,
):
    path = tmp_path / "daphne.sock"
    args = ["--socket", str(path), "--no-migrate"]  # the users fixture migrated
    first = ActivatedDaemon(args, redis_env, tmp_path, listening_socket)
    second = ActivatedDaemon(args, redis_env, tmp_path, listening_socket)
    attempts, failures = [], []
    stop_load = asyncio.Event()

    async def keep_connecting():
        """Connect, ask, repeat: every attempt must be answered, whatever daemon is up."""
        while not stop_load.is_set():
            attempts.append(1)
            try:
                status, _ = await http_probe.get_async(path, "/healthz", timeout=60)
                if status != 200:
                    failures.append(status)
            except Exception as error:
                failures.append(repr(error))

    try:
        await asyncio.to_thread(first.start, http_probe.answers(path))
        assert "(socket passed by systemd)" in first.log()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660  # not chmodded to 0666
        assert not (tmp_path / "daphne.sock.lock").is_symlink()

        alice = await unix_client(path, users["alice"]["token"])
        room = {"type": "group", "name": "restart", "members": [users["bob"]["id"]]}
        created = await request(alice, "room.create", room)
        room_id = created["data"]["room"]["id"]
        sent = await request(alice, "message.send", {"room_id": room_id, "content": "before"})
        cursor = sent["data"]["seq"]

        load = [asyncio.create_task(keep_connecting()) for _ in range(4)]
        first.signal_term()
        assert await closed_code(alice) == 1001
        await alice.close()
        first.stop_cleanly()
        assert stat.S_ISSOCK(os.stat(path).st_mode), "the daemon removed systemd's socket file"

        # No daemon runs now: these connections wait in the kernel's backlog for the next one.
        during_gap = [
            asyncio.create_task(http_probe.get_async(path, "/healthz", timeout=90))
            for _ in range(20)
        ]
        await asyncio.to_thread(second.start, http_probe.answers(path), 60)
        assert [status for status, _ in await asyncio.gather(*during_gap)] == [200] * 20

        async with unix_client(path, users["bob"]["token"]) as bob:
            for n in range(3):
                await request(
                    bob, "message.send", {"room_id": room_id, "content": f"while away {n}"}
                )

        async with unix_client(path, users["alice"]["token"]) as alice:
            resumed = await request(alice, "session.resume", {"rooms": {str(room_id): cursor}})
        events = resumed["data"]["rooms"][str(room_id)]["events"]
        assert [e["data"]["message"]["content"] for e in events] == [
            f"while away {n}" for n in range(3)
        ]
        assert not resumed["data"]["rooms"][str(room_id)]["limited"]

        stop_load.set()
        await asyncio.gather(*load)
        assert failures == [] and len(attempts) > 20, (failures, len(attempts))
        second.stop_cleanly()
        assert stat.S_ISSOCK(os.stat(path).st_mode)
    finally:
        stop_load.set()
        first.kill()
        second.kill()


def test_a_socket_path_systemd_did_not_pass_is_bound_as_usual(
    tmp_path,
    redis_env,
    listening_socket,
):
    own = tmp_path / "own.sock"
    daemon = ActivatedDaemon(["--socket", str(own)], redis_env, tmp_path, listening_socket)
    try:
        daemon.start(http_probe.answers(own))
        assert "(socket passed by systemd)" not in daemon.log()
        daemon.stop_cleanly()
        assert not own.exists()  # a socket it bound itself is removed, as before
    finally:
        daemon.kill()
