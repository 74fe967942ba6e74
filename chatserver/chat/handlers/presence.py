"""Presence events: presence.subscribe, presence.unsubscribe, presence.hide.

The presence hub they talk to is delivery/presence.py.
"""

from channels.db import database_sync_to_async

from ..conf import option
from ..protocol import ERROR_UNKNOWN_EVENT, PRESENCE, PRESENCE_SETTING, ProtocolError
from ..services import presence as service
from ..services.permissions import VIEW

room_members = database_sync_to_async(service.room_members)
peers = database_sync_to_async(service.peers)
snapshot = database_sync_to_async(service.snapshot)
set_hidden = database_sync_to_async(service.set_hidden)
hidden_setting = database_sync_to_async(service.hidden_setting)


def require_presence(conn):
    """Presence switched off (``ENABLE_PRESENCE``): the socket has no hub to talk to."""
    if conn.presence is None:
        raise ProtocolError(ERROR_UNKNOWN_EVENT, "Presence is off on this server.")


async def subscribe(conn, frame, data):
    """Watch a room's members (or every peer of one's rooms); the reply is their presence now,
    and changes follow as presence.dispatch frames."""
    require_presence(conn)
    if "room_id" in data:
        await conn.require(data["room_id"], VIEW)
        user_ids = await room_members(data["room_id"], conn.user)
    else:
        user_ids = await peers(conn.user)

    async def load(unknown):
        return await snapshot(unknown, option("PRESENCE_AWAY_AFTER"))

    entries = await conn.presence.subscribe(conn, user_ids, load)
    await conn.reply(frame, PRESENCE, {"users": entries})


async def unsubscribe(conn, frame, data):
    require_presence(conn)
    conn.presence.unsubscribe(conn)
    await conn.reply(frame, PRESENCE, {"users": []})


async def hide(conn, frame, data):
    """Hide or show one's presence; without ``hidden``, only tell whether it is hidden (a new
    socket learns the stored setting this way)."""
    require_presence(conn)
    if "hidden" not in data:
        await conn.reply(frame, PRESENCE_SETTING, await hidden_setting(conn.user))
        return
    reply = await set_hidden(conn.user, data["hidden"])
    conn.presence.hidden_changed(conn.user.pk, data["hidden"])
    await conn.reply(frame, PRESENCE_SETTING, reply)
