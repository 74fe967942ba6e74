"""SIGTERM under a flood of sends: every client gets 1001 and every answered send is stored.

PostgreSQL only: marked ``postgres``."""

import asyncio
import os

import pytest

from chatserver.chat.protocol import CLOSE_GOING_AWAY
from tests.support.twistd import Daemon, create_users_with_tokens, daemon_env, unix_socket_accepts

from .traffic import acknowledged, join, open_room, stored_messages, wait_until

DATABASE_URL = os.environ.get("DATABASE_URL", "")

pytestmark = [pytest.mark.timeout(120), pytest.mark.postgres]

NAMES = ("alice", "bob", "carol")


async def flood(member):
    """Send without waiting for answers (pipelined) until the socket closes; returns how
    many sends went out. Answers are recorded as they come (Member.acknowledged)."""
    answers = []

    async def send(n):
        client_msg_id = f"{member.room_id}-{member.name}-{n}"
        data = {"room_id": member.room_id, "content": f"flood {n}", "client_msg_id": client_msg_id}
        reply = await member.request("message.send", data)
        if reply["eventType"] == "message.dispatch":
            member.acknowledged[client_msg_id] = reply["data"]["seq"]
        else:
            member.errors[reply["error"]["code"]] += 1

    n = 0
    while member.closed is None and not member._reader.done():
        n += 1
        answers.append(asyncio.ensure_future(send(n)))
        try:
            await asyncio.sleep(0.005)
        except asyncio.CancelledError:
            break
    await asyncio.gather(*answers, return_exceptions=True)  # unanswered: the socket closed
    return n


async def test_sigterm_under_traffic(tmp_path, redis_url):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    env = daemon_env(state_dir, redis_url, DJANGO_SETTINGS_MODULE="tests.daemon.fault_settings")
    users = create_users_with_tokens(env, *NAMES)
    sock = tmp_path / "chat.sock"
    daemon = Daemon(["--socket", str(sock)], env, tmp_path).start(unix_socket_accepts(sock))
    try:
        room_id = await open_room(sock, users, NAMES)
        members = await join(sock, users, NAMES, room_id)
        floods = [asyncio.ensure_future(flood(member)) for member in members]
        await wait_until(lambda: acknowledged(members) >= 30, timeout=60)

        daemon.signal_term()
        sent = sum(await asyncio.wait_for(asyncio.gather(*floods), 60))
        assert [member.closed for member in members] == [CLOSE_GOING_AWAY] * len(members)
        daemon.stop_cleanly()

        stored = {
            client_msg_id: seq for seq, client_msg_id, _ in stored_messages(DATABASE_URL, room_id)
        }
        answered = {k: v for member in members for k, v in member.acknowledged.items()}
        missing = {k: v for k, v in answered.items() if stored.get(k) != v}
        assert not missing, f"answered but not stored: {missing}"
        errors = sum((member.errors for member in members), start=type(members[0].errors)())
        assert not errors, errors  # nothing refused: the unanswered ones just lost their socket
        print(f"sent {sent}, answered {len(answered)}, stored {len(stored)}")
    finally:
        daemon.kill()
