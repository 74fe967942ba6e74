"""The statements of a batch of connects on the event loop's connection (PostgreSQL): the
session rows, the open-socket counts, the room ids and the unread summaries, in one round trip.

Under a reconnect storm the process is CPU-bound, and a connect with something unread spent
most of it in the ORM building and compiling the summary's queries (about 7 ms, while
PostgreSQL ran them in under 1 ms); these statements are built once per process. Column lists
come from the models, and tests/chat/test_connect_state.py holds them to the ORM's answers
(storage/orm.py).
"""

from collections import Counter, defaultdict
from datetime import datetime
from functools import cache
from itertools import islice
from typing import NamedTuple

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connection
from django.utils import timezone

from ..conf import option
from ..models import Membership, Message, Reaction, Room, Session
from ..serializers import message_payload, user_payload
from ..services import rooms as room_service
from ..services.eventlog import Reacted, StoredMessage
from .array_in import any_of_array
from .interface import Connected


def statements(connects):
    """``[(sql, params), ...]`` doing what the ORM's connect does for each of ``connects``
    (``(user id, channel name, with notifications)``), in one transaction: the sessions, the
    users' open-socket counts and their rooms three statements whatever the batch's size, then
    one summary per connect that asks for it."""
    now = timezone.now()
    sessions, open_counts, rooms, summary = _sql()
    user_ids = list({user_id for user_id, _, _ in connects})
    out = [
        (sessions, [now, now, [c[0] for c in connects], [c[1] for c in connects]]),
        (open_counts, [user_ids]),
        (rooms, [user_ids]),
    ]
    limit = option("NOTIFICATION_MAX_ROOMS")
    out += [(summary, [u, u, limit + 1, u]) for u, _, notify in connects if notify]
    return out


def states_from_rows(connects, results):
    """The ``Connected`` of each of ``connects`` from the rows of ``statements``. A connect
    counts the sockets of its user opened before it in the batch, not those after (the newest
    socket is the one refused past MAX_SOCKETS_PER_USER)."""
    open_now = dict(results[1])
    rooms = defaultdict(list)
    for user_id, room_id in results[2]:
        rooms[user_id].append(room_id)
    summaries = iter(results[3:])
    after = Counter(user_id for user_id, _, _ in connects)  # the user's connects from here on
    states = []
    for user_id, _, with_notifications in connects:
        after[user_id] -= 1
        open_sockets = open_now.get(user_id, 0) - after[user_id]
        summary = _summary(next(summaries)) if with_notifications else None
        states.append(Connected(list(rooms[user_id]), summary, open_sockets))
    return states


def _summary(rows):
    limit = option("NOTIFICATION_MAX_ROOMS")
    return {"rooms": [_room_item(row) for row in rows[:limit]], "has_more": len(rows) > limit}


class RoomRow(NamedTuple):
    """A room's columns as ``room_payload`` reads them. Rows, not model instances: the four
    instances of a summary row (its room, last message, author and peer) were more than half
    of what a summary cost the loop; the users stay instances (``_user_columns``)."""

    pk: int
    kind: str
    name: str
    description: str
    is_public: bool
    locked: bool
    member_limit: int
    last_seq: int
    created_at: datetime


class CountsRow(NamedTuple):
    """The membership's and counts' columns of a summary row, as ``room_item`` reads them."""

    role: str
    last_read_seq: int
    unread_count: int
    member_count: int


# The message columns of a summary row: a StoredMessage's, its author coming from the join.
_MESSAGE_FIELDS = ("id", *StoredMessage._fields[1:-1])


def _room_item(row):
    users = _user_columns()
    values = iter(row)
    room = RoomRow._make(islice(values, len(RoomRow._fields)))
    counts = CountsRow._make(islice(values, len(CountsRow._fields)))
    message = tuple(islice(values, len(_MESSAGE_FIELDS)))
    author = users.take(values)
    reactions = next(values) or []
    peer = users.take(values)
    last_message = None
    if message[0] is not None:
        reactions = [Reacted(emoji, user_id) for emoji, user_id in reactions]
        last_message = message_payload(StoredMessage(*message, author), reactions=reactions)
    return room_service.room_item(counts, room, last_message, user_payload(peer))


class _Columns:
    """A model's concrete fields, in the order the summary selects them (from_db's order)."""

    def __init__(self, model):
        self.model = model
        self.fields = list(model._meta.concrete_fields)
        self.names = [field.attname for field in self.fields]
        self.pk = self.fields.index(model._meta.pk)

    def take(self, values):
        """The instance the next columns of a row's ``values`` iterator hold; None for a left
        join's NULLs."""
        taken = list(islice(values, len(self.fields)))
        if taken[self.pk] is None:
            return None
        return self.model.from_db(DEFAULT_DB_ALIAS, self.names, taken)


@cache
def _user_columns():
    """The columns of a user: instances, for a custom user model's ``get_full_name``."""
    return _Columns(get_user_model())


@cache
def _sql():
    """The sessions' INSERT, the users' open-socket counts and room ids, and one user's summary
    page (built once per process)."""
    quote = connection.ops.quote_name

    def names(model, *fields):
        return [quote(model._meta.get_field(name).column) for name in fields]

    def columns(alias, fields):
        return ", ".join(f"{alias}.{quote(f.column)}" for f in fields)

    room_fields = [Room._meta.get_field(name) for name in ("id", *RoomRow._fields[1:])]
    message_fields = [Message._meta.get_field(name) for name in _MESSAGE_FIELDS]
    user_fields = _user_columns().fields
    user = get_user_model()
    models = (Session, Room, Membership, Message, Reaction, user)
    session_table, rooms, memberships, messages, reactions, users = (
        quote(model._meta.db_table) for model in models
    )
    user_id = quote(user._meta.pk.column)
    room_id, kind, event_at = names(Room, "id", "kind", "last_event_at")
    member_room, member_user, role, read = names(
        Membership, "room", "user", "role", "last_read_seq"
    )
    message_id, message_room, seq, author, deleted = names(
        Message, "id", "room", "seq", "author", "is_deleted"
    )
    reaction_id, reacted, emoji, reactor = names(Reaction, "id", "message", "emoji", "user")

    user_type, channel_type = (
        Session._meta.get_field(name).cast_db_type(connection) for name in ("user", "channel_name")
    )
    inserted = ", ".join(names(Session, "connected_at", "last_heartbeat", "user", "channel_name"))
    sessions = (
        f"INSERT INTO {session_table} ({inserted}) SELECT %s, %s, new.user_id, new.channel"
        f" FROM unnest(%s::{user_type}[], %s::{channel_type}[]) AS new(user_id, channel)"
    )
    room_ids = (
        f"SELECT {member_user}, {member_room} FROM {memberships}"
        f" WHERE {any_of_array(member_user, user_type)}"
    )
    session_user, closed_at = names(Session, "user", "closed_at")
    open_counts = (
        f"SELECT {session_user}, count(*) FROM {session_table}"
        f" WHERE {any_of_array(session_user, user_type)} AND {closed_at} IS NULL"
        f" GROUP BY {session_user}"
    )
    # The page first (rooms with unread messages, newest first, one more than shown), then the
    # details of those rooms only: last message with author and reactions, a direct room's peer.
    summary = (
        f"WITH page AS (SELECT ms.{member_room} AS room_id, ms.{role} AS role,"
        f" ms.{read} AS last_read_seq, unread.n AS unread_count"
        f" FROM {memberships} ms JOIN {rooms} r ON r.{room_id} = ms.{member_room}"
        f" CROSS JOIN LATERAL (SELECT count(*) AS n FROM {messages} u"
        f" WHERE u.{message_room} = ms.{member_room} AND u.{seq} > ms.{read}"
        f" AND NOT u.{deleted} AND u.{author} IS DISTINCT FROM %s) unread"
        f" WHERE ms.{member_user} = %s AND unread.n > 0"
        f" ORDER BY r.{event_at} DESC, r.{room_id} DESC LIMIT %s)"
        f" SELECT {columns('r', room_fields)}, page.role, page.last_read_seq, page.unread_count,"
        f" (SELECT count(*) FROM {memberships} o WHERE o.{member_room} = page.room_id),"
        f" {columns('last', message_fields)}, {columns('a', user_fields)}, reactions.list,"
        f" {columns('peer', user_fields)}"
        f" FROM page JOIN {rooms} r ON r.{room_id} = page.room_id"
        f" LEFT JOIN LATERAL (SELECT * FROM {messages} m WHERE m.{message_room} = page.room_id"
        f" ORDER BY m.{seq} DESC LIMIT 1) last ON true"
        f" LEFT JOIN {users} a ON a.{user_id} = last.{author}"
        f" LEFT JOIN LATERAL (SELECT json_agg(json_build_array(x.{emoji}, x.{reactor})"
        f" ORDER BY x.{reaction_id}) AS list FROM {reactions} x"
        f" WHERE x.{reacted} = last.{message_id}) reactions ON true"
        f" LEFT JOIN LATERAL (SELECT pu.* FROM {memberships} pm"
        f" JOIN {users} pu ON pu.{user_id} = pm.{member_user}"
        f" WHERE r.{kind} = '{Room.DIRECT}' AND pm.{member_room} = page.room_id"
        f" AND pm.{member_user} <> %s LIMIT 1) peer ON true"
        f" ORDER BY r.{event_at} DESC, r.{room_id} DESC"
    )
    return sessions, open_counts, room_ids, summary
