"""The statements of a connect on the event loop's connection (PostgreSQL): the session row,
the open-socket count, the room ids and the unread summary, in one round trip.

Under a reconnect storm the process is CPU-bound, and a connect with something unread spent
most of it in the ORM building and compiling the summary's queries (about 7 ms, while
PostgreSQL ran them in under 1 ms); these statements are built once per process. Column lists
come from the models, and tests/chat/test_connect_state.py holds them to the ORM's answers
(storage/orm.py).
"""

from functools import cache

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connection
from django.utils import timezone

from ..conf import option
from ..models import Membership, Message, Reaction, Room, Session
from ..serializers import message_payload, user_payload
from ..services import rooms as room_service
from ..services.eventlog import Reacted
from .interface import Connected


def statements(user_id, channel_name, with_notifications):
    """``[(sql, params), ...]`` doing what the ORM's connect does, for one transaction."""
    now = timezone.now()
    session, open_count, rooms, summary = _sql()
    out = [
        (session, [user_id, channel_name, now, now]),
        (open_count, [user_id]),
        (rooms, [user_id]),
    ]
    if with_notifications:
        limit = option("NOTIFICATION_MAX_ROOMS")
        out.append((summary, [user_id, user_id, limit + 1, user_id]))
    return out


def state_from_rows(results, with_notifications):
    """The ``Connected`` the rows of ``statements`` say."""
    ((open_sockets,),) = results[1]
    room_ids = [room_id for (room_id,) in results[2]]
    if not with_notifications:
        return Connected(room_ids, None, open_sockets)
    limit = option("NOTIFICATION_MAX_ROOMS")
    rows = results[3]
    items = [_room_item(row) for row in rows[:limit]]
    return Connected(room_ids, {"rooms": items, "has_more": len(rows) > limit}, open_sockets)


class _Row:
    """The membership's and counts' columns of a summary row, as room_service.room_item reads."""

    __slots__ = ("role", "last_read_seq", "unread_count", "member_count")

    def __init__(self, role, last_read_seq, unread_count, member_count):
        self.role, self.last_read_seq = role, last_read_seq
        self.unread_count, self.member_count = unread_count, member_count


def _room_item(row):
    room_columns, message_columns, user_columns = _columns()
    values = iter(row)
    room = room_columns.take(values)
    counts = _Row(*(next(values) for _ in range(4)))
    message = message_columns.take(values)
    author = user_columns.take(values)
    reactions = next(values) or []
    peer = user_columns.take(values)
    last_message = None
    if message is not None:
        message.author = author
        reactions = [Reacted(emoji, user_id) for emoji, user_id in reactions]
        last_message = message_payload(message, reactions=reactions)
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
        taken = [next(values) for _ in self.fields]
        if taken[self.pk] is None:
            return None
        return self.model.from_db(DEFAULT_DB_ALIAS, self.names, taken)


@cache
def _columns():
    """The columns of a room, a message and a user (built once per process)."""
    return tuple(_Columns(model) for model in (Room, Message, get_user_model()))


@cache
def _sql():
    """The session INSERT, the user's open-socket count, the room ids and the summary page
    (built once per process)."""
    quote = connection.ops.quote_name

    def names(model, *fields):
        return [quote(model._meta.get_field(name).column) for name in fields]

    def columns(alias, fields):
        return ", ".join(f"{alias}.{quote(f.column)}" for f in fields)

    room_fields, message_fields, user_fields = (c.fields for c in _columns())
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

    session = (
        f"INSERT INTO {session_table} ({', '.join(names(Session, 'user', 'channel_name'))},"
        f" {', '.join(names(Session, 'connected_at', 'last_heartbeat'))}) VALUES (%s, %s, %s, %s)"
    )
    room_ids = f"SELECT {member_room} FROM {memberships} WHERE {member_user} = %s"
    session_user, closed_at = names(Session, "user", "closed_at")
    open_count = (
        f"SELECT count(*) FROM {session_table} WHERE {session_user} = %s AND {closed_at} IS NULL"
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
    return session, open_count, room_ids, summary
