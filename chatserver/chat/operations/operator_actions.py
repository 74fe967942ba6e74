"""Operator entry points (the manhole's helpers, the daemon's STATUS line): post a system
message into a room, count rooms and messages.

A system message is stored like a client's (the room's next seq and its event-log row in one
transaction; services.messages.system_message, through the ORM in the database thread) and
broadcast as one pre-encoded frame, so it reaches history and resume like any other.
"""

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db.models import Count

from ..delivery import fanout
from ..models import Message, Room
from ..protocol import MESSAGE_CREATED, encode_event
from ..services import messages


async def system_message(room_id, text, channel_layer=None):
    """Post ``text`` as a system message into a room; returns its frame data (seq, message).

    Raises ProtocolError(4004) when the room does not exist.
    """
    data = await database_sync_to_async(messages.system_message)(room_id, text)
    layer = channel_layer or get_channel_layer()
    await fanout.to_room(layer, room_id, encode_event(MESSAGE_CREATED, data))
    return data


@database_sync_to_async
def room_count():
    return Room.objects.count()


@database_sync_to_async
def chat_counts():
    """Rooms by kind and the number of messages, for the daemon's stats."""
    by_kind = {kind: 0 for kind, _ in Room.KINDS}
    by_kind.update(Room.objects.values_list("kind").annotate(n=Count("pk")).order_by())
    return {
        "rooms": sum(by_kind.values()),
        "rooms_by_kind": by_kind,
        "messages": Message.objects.count(),
    }
