"""session.heartbeat and session.resume."""

from channels.db import database_sync_to_async
from django.utils import timezone

from .. import sessions
from ..conf import option
from ..protocol import HEARTBEAT, encode_resume
from ..services import eventlog
from ..storage.call_queue import Batcher

# The resumes of a reconnect storm are read together: a few queries per batch of clients.
replays = Batcher(database_sync_to_async(eventlog.replay_many))


async def heartbeat(conn, frame, data):
    alive = await sessions.touch_session(conn.channel_name)
    if not alive:
        # The sweeper closed this session between two heartbeats: reopen it rather than keep a
        # socket that no longer counts as connected.
        await sessions.reopen_session(conn.user, conn.channel_name)
    await conn.reply(
        frame,
        HEARTBEAT,
        {
            "server_time": timezone.now().isoformat(),
            "inactivity_threshold": option("INACTIVITY_THRESHOLD"),
        },
    )


async def resume(conn, frame, data):
    """Replay every room event after the client's cursors, bounded per room and in bytes."""
    rooms, missing = await replays.submit(
        (conn.user, data["rooms"], option("RESUME_MAX_EVENTS"), option("MAX_ANSWER_BYTES"))
    )
    has_more = any(state["limited"] for state in rooms.values())
    await conn.respond(frame, encode_resume(rooms, missing, has_more))
