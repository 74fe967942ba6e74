"""Store a batch of messages of one room in a single SQL statement (PostgreSQL).

The ORM path makes five round trips per batch (BEGIN, the seq UPDATE, two bulk INSERTs,
COMMIT), and on a busy machine each waits for the database process to get a CPU: in the
bench that was most of a message's latency. A data-modifying WITH query takes the seqs,
inserts the messages and their log events in one statement, which PostgreSQL runs atomically
even in autocommit mode: one round trip, the same rows. Column lists come from the models, so
a new field cannot be forgotten here.
"""

from contextlib import nullcontext

from django.db import connection, transaction
from django.utils import timezone

from ..eventlog import MESSAGE_CREATED
from ..models import Message, Room, RoomEvent


def usable(room_count):
    """Whether a batch touching ``room_count`` rooms can go this way.

    One room only: a statement that bumps several rooms would lock their rows in the planner's
    order, and two daemons could deadlock; the ORM path locks rooms in id order.
    """
    return connection.vendor == "postgresql" and room_count == 1


def store(room_id, messages):
    """Take ``len(messages)`` seqs of ``room_id`` and insert the unsaved ``messages`` (in that
    order) with their ``message.dispatch`` log events; sets pk, seq and created_at on each.

    Returns False, storing nothing, when the room does not exist. Raises IntegrityError like
    bulk_create (a savepoint keeps an enclosing transaction usable).
    """
    now = timezone.now()
    for message in messages:
        message.created_at = now
    message_fields = _fields(Message, skip=("seq",))
    event_fields = _fields(RoomEvent, skip=("room", "seq", "message_id"))
    sql, params = _statement(room_id, messages, message_fields, event_fields, now)
    guard = transaction.atomic() if connection.in_atomic_block else nullcontext()
    with guard, connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return False
    for message, (pk, seq) in zip(messages, rows, strict=True):
        message.pk, message.seq = pk, seq
        message._state.adding = False
    return True


def _fields(model, skip):
    return [f for f in model._meta.concrete_fields if not f.primary_key and f.name not in skip]


def _statement(room_id, messages, message_fields, event_fields, now):
    quote = connection.ops.quote_name

    def column(model, name):
        return quote(model._meta.get_field(name).column)

    def cast(field):
        return f"%s::{field.cast_db_type(connection)}"

    room_table, last_seq = quote(Room._meta.db_table), column(Room, "last_seq")
    message_columns = [quote(f.column) for f in message_fields]
    row = "(%s::bigint, " + ", ".join(cast(f) for f in message_fields) + ")"
    names = ["rank"] + [f"c{i}" for i in range(len(message_fields))]
    event = RoomEvent(event_type=MESSAGE_CREATED)
    event.created_at = now
    event_columns = [quote(f.column) for f in event_fields]
    sql = (
        f"WITH bumped AS ("
        f" UPDATE {room_table} SET {last_seq} = {last_seq} + %s,"
        f" {column(Room, 'last_event_at')} = %s"
        f" WHERE {column(Room, 'id')} = %s RETURNING {last_seq} - %s AS base),"
        f" batch ({', '.join(names)}) AS (VALUES {', '.join([row] * len(messages))}),"
        f" stored AS ("
        f" INSERT INTO {quote(Message._meta.db_table)} ({', '.join(message_columns)},"
        f" {column(Message, 'seq')})"
        f" SELECT {', '.join(f'batch.{n}' for n in names[1:])}, bumped.base + batch.rank"
        f" FROM bumped CROSS JOIN batch"
        f" RETURNING {column(Message, 'id')} AS id, {column(Message, 'seq')} AS seq),"
        f" logged AS ("
        f" INSERT INTO {quote(RoomEvent._meta.db_table)} ({', '.join(event_columns)},"
        f" {column(RoomEvent, 'room')}, {column(RoomEvent, 'seq')},"
        f" {column(RoomEvent, 'message_id')})"
        f" SELECT {', '.join(cast(f) for f in event_fields)}, %s, stored.seq, stored.id"
        f" FROM stored)"
        f" SELECT id, seq FROM stored ORDER BY seq"
    )
    count = len(messages)
    params = [count, connection.ops.adapt_datetimefield_value(now), room_id, count]
    for rank, message in enumerate(messages, start=1):
        params.append(rank)
        params.extend(_db_value(f, message) for f in message_fields)
    params.extend(_db_value(f, event) for f in event_fields)
    params.append(room_id)
    return sql, params


def _db_value(field, obj):
    return field.get_db_prep_save(getattr(obj, field.attname), connection)
