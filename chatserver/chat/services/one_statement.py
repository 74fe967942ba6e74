"""Store a batch of messages of one room in a single SQL statement (PostgreSQL).

The ORM path makes five round trips per batch (BEGIN, the seq UPDATE, two bulk INSERTs,
COMMIT), and on a busy machine each waits for the database process to get a CPU: in the
bench that was most of a message's latency, with the client_msg_id lookup one more. A
data-modifying WITH query passes over resends of stored client_msg_ids, takes the seqs, and
inserts the messages and their log events in one statement, which PostgreSQL runs atomically
even in autocommit mode: one round trip, the same rows. Column lists come from the models, so
a new field cannot be forgotten here.
"""

from contextlib import nullcontext
from functools import cache, lru_cache

from django.db import connection, transaction
from django.utils import timezone

from ..models import Message, Room, RoomEvent
from .eventlog import MESSAGE_CREATED


def usable(room_count):
    """Whether one statement storing the messages of ``room_count`` rooms can go this way.

    One room only: a statement that bumps several rooms would lock their rows in the planner's
    order, and two daemons could deadlock; the ORM path locks rooms in id order.
    """
    return connection.vendor == "postgresql" and room_count == 1


def store(room_id, messages):
    """Store the unsaved ``messages`` (``{key: Message}``, in that order) with their
    ``message.dispatch`` log events, taking the room's next seqs; returns the stored ones by key,
    with pk, seq and created_at set.

    A message whose (author, client_msg_id) is stored already is passed over (a resend), and
    nothing is stored when the room does not exist. Raises IntegrityError like bulk_create
    when a resend races in (a savepoint keeps an enclosing transaction usable).
    """
    sql, params = statement(room_id, messages)
    guard = transaction.atomic() if connection.in_atomic_block else nullcontext()
    with guard, connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return stored_messages(messages, rows)


def statement(room_id, messages):
    """``(sql, params)`` storing ``messages`` as store() does, for any connection to run (the
    event loop's one runs it too: chat/loopstore.py). Sets the messages' created_at."""
    now = timezone.now()
    for message in messages.values():
        message.created_at = now
    return _statement(room_id, list(messages.values()), now)


def stored_messages(messages, rows):
    """The messages the statement's result ``rows`` name, by key, with pk and seq set."""
    keys = list(messages)
    stored = {}
    for rank, pk, seq in rows:
        key = keys[rank - 1]
        message = messages[key]
        message.pk, message.seq = pk, seq
        message._state.adding = False
        stored[key] = message
    return stored


@cache
def _fields():
    """The columns written: every concrete field but the primary key and what SQL computes."""

    def written(model, skip):
        return [f for f in model._meta.concrete_fields if not f.primary_key and f.name not in skip]

    return written(Message, ("seq",)), written(RoomEvent, ("room", "seq", "message_id"))


def _statement(room_id, messages, now):
    message_fields, event_fields = _fields()
    params = []
    for rank, message in enumerate(messages, start=1):
        params.append(rank)
        params.extend(_db_value(f, message) for f in message_fields)
    params += [connection.ops.adapt_datetimefield_value(now), room_id]
    event = RoomEvent(event_type=MESSAGE_CREATED, created_at=now)
    params.extend(_db_value(f, event) for f in event_fields)
    params.append(room_id)
    return _sql(len(messages)), params


@lru_cache(maxsize=128)  # the Batcher sends at most 100 messages at a time
def _sql(count):
    """The statement for a batch of ``count`` messages (built once per size: a hot path)."""
    quote = connection.ops.quote_name

    def column(model, name):
        return quote(model._meta.get_field(name).column)

    def cast(field):
        return f"%s::{field.cast_db_type(connection)}"

    message_fields, event_fields = _fields()
    names = [f"c{i}" for i in range(len(message_fields))]
    author, client_msg_id = (
        names[message_fields.index(Message._meta.get_field(name))]
        for name in ("author", "client_msg_id")
    )
    room_table, last_seq = quote(Room._meta.db_table), column(Room, "last_seq")
    message_table = quote(Message._meta.db_table)
    row = "(%s::bigint, " + ", ".join(cast(f) for f in message_fields) + ")"
    return (
        f"WITH batch (rank, {', '.join(names)}) AS (VALUES {', '.join([row] * count)}),"
        # Resends of stored client_msg_ids are passed over; the others are numbered in order.
        # A LATERAL lookup with LIMIT 1 is one index probe per row in every plan: written as
        # NOT EXISTS, the generic plan of a prepared several-message statement made while the
        # table was small hashed the whole message table for every batch.
        f" fresh AS (SELECT batch.*, row_number() OVER (ORDER BY batch.rank) AS n FROM batch"
        f" LEFT JOIN LATERAL (SELECT 1 AS stored FROM {message_table} old"
        f" WHERE old.{column(Message, 'author')} = batch.{author}"
        f" AND old.{column(Message, 'client_msg_id')} = batch.{client_msg_id}"
        f" AND old.{column(Message, 'client_msg_id')} IS NOT NULL LIMIT 1) resent ON true"
        f" WHERE resent.stored IS NULL),"
        f" bumped AS (UPDATE {room_table}"
        f" SET {last_seq} = {last_seq} + (SELECT count(*) FROM fresh),"
        f" {column(Room, 'last_event_at')} = %s"
        f" WHERE {column(Room, 'id')} = %s AND EXISTS (SELECT 1 FROM fresh)"
        f" RETURNING {last_seq} - (SELECT count(*) FROM fresh) AS base),"
        f" stored AS (INSERT INTO {message_table}"
        f" ({', '.join(quote(f.column) for f in message_fields)}, {column(Message, 'seq')})"
        f" SELECT {', '.join(f'fresh.{n}' for n in names)}, bumped.base + fresh.n"
        f" FROM bumped CROSS JOIN fresh"
        f" RETURNING {column(Message, 'id')} AS id, {column(Message, 'seq')} AS seq),"
        f" logged AS (INSERT INTO {quote(RoomEvent._meta.db_table)}"
        f" ({', '.join(quote(f.column) for f in event_fields)}, {column(RoomEvent, 'room')},"
        f" {column(RoomEvent, 'seq')}, {column(RoomEvent, 'message_id')})"
        f" SELECT {', '.join(cast(f) for f in event_fields)}, %s, stored.seq, stored.id"
        f" FROM stored)"
        f" SELECT fresh.rank, stored.id, stored.seq FROM stored"
        f" JOIN bumped ON true JOIN fresh ON stored.seq = bumped.base + fresh.n"
        f" ORDER BY stored.seq"
    )


def _db_value(field, obj):
    return field.get_db_prep_save(getattr(obj, field.attname), connection)
