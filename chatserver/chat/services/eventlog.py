"""The per-room event log: gap-free ``seq`` assignment and replay for ``session.resume``.

``next_seq`` must run inside the ``transaction.atomic`` block that writes the event: the UPDATE
takes the room's row lock (PostgreSQL) or the database write lock (SQLite, IMMEDIATE
transactions), so concurrent writers queue and every seq is used exactly once.
"""

from django.db import connection
from django.db.models import F, Q, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from ..models import Membership, Message, Room, RoomEvent
from ..protocol import MESSAGE_CREATED, MESSAGE_MODIFIED, encoded_size
from ..serializers import deleted_message_payload, message_payload

# Events whose frame embeds the message, rebuilt from its current state.
MESSAGE_EVENTS = (MESSAGE_CREATED, MESSAGE_MODIFIED)


def next_seq(room_id, count=1):
    """Take the room's next ``count`` seqs in one statement; returns the last of them.

    Raw SQL because the ORM's update() cannot return the new value (UPDATE ... RETURNING:
    PostgreSQL, SQLite 3.35+); this runs once per room and batch, on the hot path of messages.
    """
    quote = connection.ops.quote_name
    table, seq, stamp = quote(Room._meta.db_table), quote("last_seq"), quote("last_event_at")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {seq} = {seq} + %s, {stamp} = %s WHERE {quote('id')} = %s "
            f"RETURNING {seq}",
            [count, connection.ops.adapt_datetimefield_value(timezone.now()), room_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise Room.DoesNotExist(f"room {room_id} does not exist")
    return row[0]


def record(room_id, event_type, data=None, message_id=None, seq=None):
    """Append one event to the room's log; returns its seq. Call inside transaction.atomic."""
    if seq is None:
        seq = next_seq(room_id)
    RoomEvent.objects.create(
        room_id=room_id, seq=seq, event_type=event_type, message_id=message_id, data=data or {}
    )
    return seq


def frame_data(room_id, seq, data, message=None):
    """The ``data`` of a room event frame, identical live and on replay."""
    payload = {"room_id": room_id, "seq": seq, **data}
    if message is not None:
        payload["message"] = message
    return payload


def message_payloads(message_ids):
    """Current payloads of messages by id, in two queries; unknown ids are left out."""
    if not message_ids:
        return {}
    messages = (
        Message.objects.filter(pk__in=message_ids)
        .select_related("author")
        .prefetch_related("reactions")
    )
    return {message.pk: message_payload(message) for message in messages}


def replay(user, cursors, limit, max_bytes=None):
    """Events after each cursor, for the rooms the user is a member of (constant queries).

    Returns ``(rooms, missing)``: per room ``{"events", "limited", "next_after", "last_seq"}``,
    and the ids of requested rooms the user cannot see (deleted, left or never joined). At most
    ``limit`` events per room, and about ``max_bytes`` of events in all (at least one): a room
    cut short is ``limited``, to be resumed from its ``next_after``.
    """
    last_seqs = dict(
        Membership.objects.filter(user=user, room_id__in=list(cursors)).values_list(
            "room_id", "room__last_seq"
        )
    )
    missing = sorted(set(cursors) - set(last_seqs))
    rooms = {
        room_id: {"events": [], "limited": False, "next_after": cursors[room_id], "last_seq": last}
        for room_id, last in last_seqs.items()
    }
    wanted = Q()
    for room_id, last in last_seqs.items():
        if last > cursors[room_id]:
            wanted |= Q(room_id=room_id, seq__gt=cursors[room_id])
    if not wanted:
        return rooms, missing
    events = list(
        RoomEvent.objects.filter(wanted)
        .annotate(rank=Window(RowNumber(), partition_by=[F("room_id")], order_by=F("seq").asc()))
        .filter(rank__lte=limit + 1)
        .order_by("room_id", "seq")
    )
    messages = message_payloads({e.message_id for e in events if e.message_id is not None})
    budget, replayed = max_bytes, 0
    for event in events:
        room = rooms[event.room_id]
        if len(room["events"]) == limit or (budget is not None and budget < 0):
            room["limited"] = True
            continue
        message = None
        if event.event_type in MESSAGE_EVENTS:
            message = messages.get(event.message_id) or deleted_message_payload(
                event.message_id, event.room_id
            )
        data = frame_data(event.room_id, event.seq, event.data, message)
        replayed_event = {"eventType": event.event_type, "data": data}
        if budget is not None:
            budget -= encoded_size(replayed_event)
            if budget < 0 and replayed:
                room["limited"] = True
                continue
        room["events"].append(replayed_event)
        room["next_after"] = event.seq
        replayed += 1
    return rooms, missing
