"""room.discover: a page of public rooms, answered to the requesting socket only."""

from channels.db import database_sync_to_async

from ..protocol import ROOM_DISCOVER
from ..services import discovery as service

discover_rooms = database_sync_to_async(service.discover)


async def discover(conn, frame, data):
    await conn.reply(frame, ROOM_DISCOVER, await discover_rooms(conn.user, data))
