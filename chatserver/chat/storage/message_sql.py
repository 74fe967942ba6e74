"""The statement that stores a batch of messages, of any rooms (PostgreSQL, event loop).

The ORM's way makes round trips per batch and room (BEGIN, a seq UPDATE per room, two bulk
INSERTs, COMMIT), and on a busy machine each waits for the database process to get a CPU. A
data-modifying WITH query passes over resends of stored client_msg_ids, takes every room's
seqs, and inserts the messages and their log events in one statement, which PostgreSQL runs
atomically even in autocommit mode: one round trip whatever the rooms, the same rows as
storage/orm.py writes. Room rows are locked in id order, as the ORM's store locks them, so
concurrent batches of two daemons cannot deadlock. Column lists come from the models, so a new
field cannot be forgotten here.

The batch's rows arrive as one JSON array, one parameter whatever the batch's size: one query
text, which psycopg converts once and prepares once, and PostgreSQL plans once. A VALUES list,
a placeholder per value, was new text for every size, parsed again at every execution past 50
parameters; an array per column cost psycopg a Python call per value to quote. The rows are
the messages' own attribute values (ints, strings, booleans, None, aware datetimes), encoded
by ``json.dumps`` in one call: Django's per-value preparation cost more than the rest of the
statement. PostgreSQL reads them as ``jsonb``, parsed once: a ``json`` value is parsed again by
every ``->>`` that takes a column from it (a fifth of the statement's time at 40 messages).
"""

import json
from datetime import datetime
from functools import cache
from operator import attrgetter

from django.db import connection
from django.utils import timezone

from ..models import Message, Room, RoomEvent
from ..protocol import MESSAGE_CREATED


def statement(per_room):
    """``(sql, params)`` storing the unsaved messages of ``{room_id: {key: Message}}`` (each
    room's in that order) with their ``message.dispatch`` log events, each room's taking its
    next seqs. Sets the messages' created_at.

    A message whose (author, client_msg_id) is stored already is passed over (a resend), and
    nothing is stored for a room that does not exist; it fails with IntegrityError when a
    resend races in from another connection (nothing is stored then)."""
    now = timezone.now()
    messages = _in_order(per_room)
    for _, message in messages:
        message.created_at = now
    return _statement([message for _, message in messages], now)


def stored_messages(per_room, rows):
    """The messages the statement's result ``rows`` name, by key, with pk and seq set."""
    messages = _in_order(per_room)
    stored = {}
    for rank, pk, seq in rows:
        key, message = messages[rank - 1]
        message.pk, message.seq = pk, seq
        message._state.adding = False
        stored[key] = message
    return stored


def _in_order(per_room):
    """``[(key, message), ...]``: rooms in id order, each room's messages in its order; the
    statement's ranks count from 1 in this order."""
    return [pair for room_id in sorted(per_room) for pair in per_room[room_id].items()]


@cache
def _fields():
    """The columns written: every concrete field but the primary key and what SQL computes."""

    def written(model, skip):
        return [f for f in model._meta.concrete_fields if not f.primary_key and f.name not in skip]

    return written(Message, ("seq",)), written(RoomEvent, ("room", "seq", "message_id"))


def _statement(messages, now):
    message_fields, event_fields = _fields()
    values_of = attrgetter(*(f.attname for f in message_fields))
    params = [json.dumps([values_of(m) for m in messages], default=_json_value)]
    params.append(connection.ops.adapt_datetimefield_value(now))
    event = RoomEvent(event_type=MESSAGE_CREATED, created_at=now)
    params.extend(_db_value(f, event) for f in event_fields)
    return _sql(), params


def _json_value(value):
    """A row value ``json`` cannot encode by itself: an aware datetime, as ISO 8601 (which
    PostgreSQL reads back exactly); any other type is an error, not a guess."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.isoformat()
    raise TypeError(f"No JSON form for a message column value: {value!r}")


@cache
def _sql():
    """The statement, for a batch of any size (built once: a hot path)."""
    quote = connection.ops.quote_name

    def column(model, name):
        return quote(model._meta.get_field(name).column)

    def cast(field):
        return f"%s::{field.cast_db_type(connection)}"

    message_fields, event_fields = _fields()
    names = [f"c{i}" for i in range(len(message_fields))]
    room, author, client_msg_id = (
        names[message_fields.index(Message._meta.get_field(name))]
        for name in ("room", "author", "client_msg_id")
    )
    room_table, room_id = quote(Room._meta.db_table), column(Room, "id")
    last_seq = column(Room, "last_seq")
    message_table = quote(Message._meta.db_table)
    message_room = column(Message, "room")
    row_columns = ", ".join(
        f"(r->>{i})::{f.cast_db_type(connection)} AS {name}"
        for i, (f, name) in enumerate(zip(message_fields, names, strict=True))
    )
    return (
        # One JSON array per message, its columns in order; the rank counts them from 1.
        f"WITH batch AS (SELECT {row_columns}, rank"
        f" FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS b(r, rank)),"
        # Resends of stored client_msg_ids are passed over; the others are numbered in order,
        # per room. A LATERAL lookup with LIMIT 1 is one index probe per row in every plan:
        # written as NOT EXISTS, the generic plan of a prepared several-message statement made
        # while the table was small hashed the whole message table for every batch.
        f" fresh AS (SELECT batch.*,"
        f" row_number() OVER (PARTITION BY batch.{room} ORDER BY batch.rank) AS n FROM batch"
        f" LEFT JOIN LATERAL (SELECT 1 AS stored FROM {message_table} old"
        f" WHERE old.{column(Message, 'author')} = batch.{author}"
        f" AND old.{column(Message, 'client_msg_id')} = batch.{client_msg_id}"
        f" AND old.{column(Message, 'client_msg_id')} IS NOT NULL LIMIT 1) resent ON true"
        f" WHERE resent.stored IS NULL),"
        f" counts AS (SELECT {room} AS room, count(*) AS k FROM fresh GROUP BY {room}),"
        # The rows are locked in the sort's order: by id, as every store locks them.
        f" locked AS (SELECT {room_table}.{room_id} AS room FROM {room_table}"
        f" JOIN counts ON counts.room = {room_table}.{room_id}"
        f" ORDER BY {room_table}.{room_id} FOR UPDATE OF {room_table}),"
        f" bumped AS (UPDATE {room_table}"
        f" SET {last_seq} = {room_table}.{last_seq} + counts.k,"
        f" {column(Room, 'last_event_at')} = %s"
        f" FROM counts JOIN locked ON locked.room = counts.room"
        f" WHERE {room_table}.{room_id} = counts.room"
        f" RETURNING {room_table}.{room_id} AS room,"
        f" {room_table}.{last_seq} - counts.k AS base),"
        f" stored AS (INSERT INTO {message_table}"
        f" ({', '.join(quote(f.column) for f in message_fields)}, {column(Message, 'seq')})"
        f" SELECT {', '.join(f'fresh.{n}' for n in names)}, bumped.base + fresh.n"
        f" FROM fresh JOIN bumped ON bumped.room = fresh.{room}"
        f" RETURNING {column(Message, 'id')} AS id, {message_room} AS room,"
        f" {column(Message, 'seq')} AS seq),"
        f" logged AS (INSERT INTO {quote(RoomEvent._meta.db_table)}"
        f" ({', '.join(quote(f.column) for f in event_fields)}, {column(RoomEvent, 'room')},"
        f" {column(RoomEvent, 'seq')}, {column(RoomEvent, 'message_id')})"
        f" SELECT {', '.join(cast(f) for f in event_fields)}, stored.room, stored.seq, stored.id"
        f" FROM stored)"
        f" SELECT fresh.rank, stored.id, stored.seq FROM stored"
        f" JOIN bumped ON bumped.room = stored.room"
        f" JOIN fresh ON fresh.{room} = stored.room AND stored.seq = bumped.base + fresh.n"
        f" ORDER BY fresh.rank"
    )


def _db_value(field, obj):
    return field.get_db_prep_save(getattr(obj, field.attname), connection)
