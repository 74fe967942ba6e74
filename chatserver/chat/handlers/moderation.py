"""Moderation events: room.mute and room.unmute (room admins).

A mute is a room event: the room hears of it with a ``seq``, and every connection in the room
drops its cached access (``invalidate``) so the muted member's next send is refused (4002).
"""

from channels.db import database_sync_to_async

from ..delivery import fanout
from ..protocol import ROOM_MUTE, encode_event
from ..services import moderation as service
from ..services.permissions import MANAGE_MEMBERS

mute_db = database_sync_to_async(service.mute)
unmute_db = database_sync_to_async(service.unmute)


async def _answer(conn, frame, room_id, outcome):
    payload, changed = outcome
    text = encode_event(ROOM_MUTE, payload)
    await conn.respond(frame, text)
    if changed:
        await fanout.to_room(
            conn.channel_layer, room_id, text, origin=conn.channel_name, invalidate=True
        )


async def mute(conn, frame, data):
    room_id = data["room_id"]
    access = await conn.require(room_id, MANAGE_MEMBERS)
    until = service.mute_deadline(data)
    outcome = await mute_db(conn.user, access, room_id, data["user_id"], until)
    await _answer(conn, frame, room_id, outcome)


async def unmute(conn, frame, data):
    room_id = data["room_id"]
    access = await conn.require(room_id, MANAGE_MEMBERS)
    outcome = await unmute_db(conn.user, access, room_id, data["user_id"])
    await _answer(conn, frame, room_id, outcome)
