"""The per-room event log: gap-free ``seq`` assignment and replay for ``session.resume``.

``next_seq`` must run inside the ``transaction.atomic`` block that writes the event: the UPDATE
takes the room's row lock (PostgreSQL) or the database write lock (SQLite, IMMEDIATE
transactions), so concurrent writers queue and every seq is used exactly once.
"""

from collections import defaultdict
from datetime import datetime
from typing import NamedTuple

from django.db import connection
from django.utils import timezone

from ..conf import option
from ..models import Membership, Message, Reaction, Room, RoomEvent
from ..protocol import MESSAGE_CREATED, MESSAGE_MODIFIED, encode_event
from ..serializers import deleted_message_payload, message_payload
from ..storage.raw_reads import Select
from .replay_cache import ReplayCache
from .users import users_by_id

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


class Reacted(NamedTuple):
    """One reaction as payloads show it (serializers.reactions_payload)."""

    emoji: str
    user_id: int


def reactions_of(message_ids):
    """``{message id: [Reacted, ...]}`` in first-reaction order, in one query: lighter than
    ``prefetch_related("reactions")``, which builds a model instance and a queryset per message
    (a reconnect storm replays thousands)."""
    reactions = defaultdict(list)
    for message_id, emoji, user_id in _reactions.rows(list(message_ids)):
        reactions[message_id].append(Reacted(emoji, user_id))
    return reactions


class StoredMessage(NamedTuple):
    """A message row as ``message_payload`` reads it. A reconnect storm replays thousands of
    messages, and building a model instance for each (two, with its author) was most of the
    cost of reading them; authors are instances, one per author."""

    pk: int
    room_id: int
    seq: int
    kind: str
    content: str
    client_msg_id: str | None
    parent_id: int | None
    forwarded_from_id: int | None
    is_edited: bool
    is_deleted: bool
    created_at: datetime
    edited_at: datetime | None
    author: object  # the author's user, or None once the account is deleted


# Frames of replayed events, shared by the replays of the next few seconds (replay_cache.py).
replay_cache = ReplayCache(lambda: option("REPLAY_CACHE_SECONDS"))

# The reads of replay_many and message_payloads, written once (storage/raw_reads.py says why).
_memberships = Select(Membership, ("user", "room"), keys=("user", "room"))
_last_seqs = Select(Room, ("id", "last_seq"), keys=("id",))
# The columns of a StoredMessage, its author's id last.
_messages = Select(Message, ("id", *StoredMessage._fields[1:-1], "author"), keys=("id",))
_reactions = Select(Reaction, ("message", "emoji", "user"), keys=("message",), order_by="id")


def message_payloads(message_ids):
    """Current payloads of messages by id, in three queries; unknown ids are left out."""
    if not message_ids:
        return {}
    rows = _messages.rows(list(message_ids))
    authors = users_by_id({row[-1] for row in rows if row[-1] is not None})
    messages = [StoredMessage(*row[:-1], authors.get(row[-1])) for row in rows]
    reactions = reactions_of(message.pk for message in messages if not message.is_deleted)
    return {
        message.pk: message_payload(message, reactions=reactions.get(message.pk, ()))
        for message in messages
    }


def replay(user, cursors, limit, max_bytes=None):
    """Events after each cursor, for the rooms the user is a member of (constant queries).

    Returns ``(rooms, missing)``: per room ``{"events", "limited", "next_after", "last_seq"}``
    (the events as JSON texts, for protocol.encode_resume), and the ids of requested rooms the
    user cannot see (deleted, left or never joined). At most ``limit`` events per room, and
    about ``max_bytes`` of events in all (at least one): a room cut short is ``limited``, to be
    resumed from its ``next_after``.
    """
    return replay_many([(user, cursors, limit, max_bytes)])[0]


def replay_many(requests):
    """``replay`` for many ``(user, cursors, limit, max_bytes)`` requests at once (the clients
    of a reconnect storm): six queries for the whole batch, whatever its size.

    Seqs have no gaps, so the first ``limit`` events after cursor ``a`` are the seqs
    ``a + 1 .. a + limit``: one range per room and cursor, ranges of one room merged.
    """
    user_ids = {user.pk for user, _, _, _ in requests}
    room_ids = {room_id for _, cursors, _, _ in requests for room_id in cursors}
    last_seq = {}  # (user id, room id) -> the room's last seq, for the rooms the user is in
    seqs = {}  # room id -> its last seq now
    if room_ids:
        pairs = _memberships.rows(user_ids, room_ids)
        seqs = dict(_last_seqs.rows({room_id for _, room_id in pairs}))
        for user_id, room_id in pairs:
            if room_id in seqs:  # else deleted since
                last_seq[(user_id, room_id)] = seqs[room_id]
    wanted = {}  # room id -> [(first seq, last seq)] to read
    for user, cursors, limit, _ in requests:
        for room_id, after in cursors.items():
            last = last_seq.get((user.pk, room_id))
            if last is not None and last > after:
                wanted.setdefault(room_id, []).append((after + 1, min(last, after + limit)))
    spans = [(room_id, *span) for room_id, each in wanted.items() for span in _merged(each)]
    replayed, spans = replay_cache.take(spans, seqs)
    events = logged_events(spans)
    messages = message_payloads({e.message_id for e in events.values() if e.message_id})
    # Members of one room replay the same events: each is built and encoded once per batch
    # (or per few seconds, the cache), and the answers share its text (encode_resume joins it).
    built = {key: _replayed_event(event, messages) for key, event in events.items()}
    replay_cache.keep(built, seqs)
    replayed.update(built)
    return [
        _replayed(user, cursors, limit, max_bytes, last_seq, replayed)
        for user, cursors, limit, max_bytes in requests
    ]


def _replayed_event(event, messages):
    """The event as replayed, as JSON text: a frame of its own, as broadcast."""
    message = None
    if event.event_type in MESSAGE_EVENTS:
        message = messages.get(event.message_id) or deleted_message_payload(
            event.message_id, event.room_id
        )
    data = frame_data(event.room_id, event.seq, event.data, message)
    return encode_event(event.event_type, data)


class LoggedEvent(NamedTuple):
    """One row of the event log, as replay reads it (no model instance: a storm reads many)."""

    room_id: int
    seq: int
    event_type: str
    message_id: int | None
    data: dict


SPANS_PER_QUERY = 500  # SQLite: three parameters a span, well inside its limit


def logged_events(spans):
    """``{(room id, seq): LoggedEvent}`` for the ``(room id, first seq, last seq)`` spans: the
    spans are a relation joined to the log, one index range scan each (an OR of per-room
    conditions cost more to build than to run)."""
    data_field = RoomEvent._meta.get_field("data")
    events = {}
    with connection.cursor() as cursor:
        for sql, params in _span_queries(spans):
            cursor.execute(sql, params)
            for room_id, seq, event_type, message_id, data in cursor.fetchall():
                data = data_field.from_db_value(data, None, connection)
                events[(room_id, seq)] = LoggedEvent(room_id, seq, event_type, message_id, data)
    return events


def _span_queries(spans):
    """``(sql, params)`` reading the spans' events. PostgreSQL: three arrays unnested, one
    query whose text never changes (storage/array_in.py says why that matters). Elsewhere: a
    VALUES list, one query per SPANS_PER_QUERY spans."""
    if not spans:
        return
    meta = RoomEvent._meta
    quote = connection.ops.quote_name

    def column(name):
        return f"e.{quote(meta.get_field(name).column)}"

    select = (
        f"SELECT {column('room')}, {column('seq')}, {column('event_type')},"
        f" {column('message_id')}, {column('data')} FROM {quote(meta.db_table)} e"
    )
    # VALUES columns are named column1, column2, ... in SQLite (and PostgreSQL).
    on = (
        f" ON {column('room')} = spans.column1"
        f" AND {column('seq')} BETWEEN spans.column2 AND spans.column3"
    )
    if connection.vendor == "postgresql":
        room = meta.get_field("room").cast_db_type(connection)
        seq = meta.get_field("seq").cast_db_type(connection)
        unnested = f"unnest(%s::{room}[], %s::{seq}[], %s::{seq}[])"
        columns = [list(each) for each in zip(*spans, strict=True)]
        yield f"{select} JOIN {unnested} AS spans(column1, column2, column3){on}", columns
        return
    for start in range(0, len(spans), SPANS_PER_QUERY):
        chunk = spans[start : start + SPANS_PER_QUERY]
        values = ", ".join(["(%s, %s, %s)"] * len(chunk))
        yield f"{select} JOIN (VALUES {values}) AS spans{on}", [v for span in chunk for v in span]


def _merged(spans):
    """Overlapping or touching ``(first, last)`` ranges joined."""
    merged = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return merged


def _replayed(user, cursors, limit, max_bytes, last_seq, replayed_events):
    """One request's answer from the batch's rows: rooms in id order, events in seq order."""
    rooms, missing = {}, []
    budget, replayed = max_bytes, 0
    for room_id in sorted(cursors):
        last = last_seq.get((user.pk, room_id))
        if last is None:
            missing.append(room_id)
            continue
        after = cursors[room_id]
        room = rooms[room_id] = {
            "events": [], "limited": False, "next_after": after, "last_seq": last,
        }  # fmt: skip
        for seq in range(after + 1, min(last, after + limit) + 1):
            event = replayed_events.get((room_id, seq))
            if event is None:
                continue
            if budget is not None and budget < 0:
                break
            if budget is not None:
                budget -= len(event)
                if budget < 0 and replayed:
                    break
            room["events"].append(event)
            room["next_after"] = seq
            replayed += 1
        room["limited"] = room["next_after"] < last
    return rooms, missing
