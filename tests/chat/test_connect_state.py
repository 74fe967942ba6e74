"""A connect's session row, rooms and unread summary: the ORM in the database thread
(storage/orm.py) and the event loop's statements (storage/connect_sql.py) give the same answers.

PostgreSQL only (``make test`` runs the chat tests there too); on SQLite the daemon takes the
ORM path, which every connecting test covers.
"""

import asyncio
import contextvars
import itertools

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connection, connections

from chatserver.chat import runtime
from chatserver.chat.models import Message, Session
from chatserver.chat.services import messages as message_service
from chatserver.chat.services import rooms as room_service
from chatserver.chat.services.permissions import STAFF_PERMS, Access
from chatserver.chat.storage import orm
from chatserver.chat.storage.loop_connection import APPLICATION_NAME

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only"),
]

CHANNELS = itertools.count()  # channel names are never reused


def owner(room_id):
    return Access(room_id, "group", "owner", STAFF_PERMS)


def make_room(owner, members, name):
    data = {"type": "group", "name": name, "members": [m.pk for m in members]}
    return room_service.create_room(owner, data).data["room"]["id"]


def send(author, room_id, content):
    return message_service.send_message(author, room_id, {"content": content})[0]["message"]["id"]


def react(user, room_id, message_id, emoji):
    access = Access(room_id, "group", "member", frozenset())
    message_service.react(user, access, message_id, {"action": "add", "emoji": emoji})


def read_up_to(user, room_id, seq):
    message_service.mark_read(user, {room_id: seq})


def seq_of(message_id):
    return Message.objects.get(pk=message_id).seq


@database_sync_to_async
def both_ways_sync(user, with_notifications):
    """The ORM's answer and the session row it wrote."""
    channel = f"orm-{next(CHANNELS)}"
    answer = orm.opened_now(user, channel, with_notifications)
    return answer, session_row(channel)


def session_row(channel):
    session = Session.objects.get(channel_name=channel)
    return session.user_id, session.closed_at, session.close_code, session.last_heartbeat


async def on_the_loop(user, with_notifications):
    channel = f"loop-{next(CHANNELS)}"
    answer = await runtime.connected(user, channel, with_notifications)
    return answer, await database_sync_to_async(session_row)(channel)


async def assert_same(user, with_notifications=True):
    (orm_ids, orm_summary, orm_open), orm_session = await both_ways_sync(user, with_notifications)
    (loop_ids, loop_summary, loop_open), loop_session = await on_the_loop(user, with_notifications)
    assert sorted(loop_ids) == sorted(orm_ids) and len(loop_ids) == len(orm_ids)
    assert loop_summary == orm_summary
    assert loop_open == orm_open + 1  # the ORM's socket is still open: both count
    assert loop_session[:3] == orm_session[:3] == (user.pk, None, None)
    assert abs(loop_session[3] - orm_session[3]).total_seconds() < 60
    return loop_ids, loop_summary


def build_mixed_rooms(users):
    """Unread, read, own, deleted, edited, reacted, system and orphaned messages; a direct room."""
    alice, bob, carol = users.alice, users.bob, users.carol
    quiet = make_room(alice, [bob], "quiet")
    send(bob, quiet, "bob's own")  # the user's own messages are never unread
    busy = make_room(alice, [bob, carol], "busy")
    first = send(alice, busy, "first")
    read_up_to(bob, busy, seq_of(first))
    last = send(carol, busy, "last")
    send(alice, busy, "before the reactions")
    react(carol, busy, last, "+1")  # reactions on an earlier message change nothing here
    newest = send(carol, busy, "newest")
    for user, emoji in ((alice, "tada"), (carol, "+1"), (bob, "tada"), (alice, "+1")):
        react(user, busy, newest, emoji)
    edited = make_room(carol, [bob], "edited")
    message_id = send(carol, edited, "draft")
    update = {"action": "update", "content": "final"}
    message_service.modify_message(carol, owner(edited), message_id, update)
    soft = make_room(carol, [bob, alice], "soft-deleted")
    send(alice, soft, "kept")
    gone = send(carol, soft, "gone")
    message_service.modify_message(carol, owner(soft), gone, {"action": "delete"})  # last, deleted
    only_deleted = make_room(alice, [bob], "only deleted")  # nothing unread
    gone = send(alice, only_deleted, "gone")
    message_service.modify_message(alice, owner(only_deleted), gone, {"action": "delete"})
    system = make_room(alice, [bob], "system")
    message_service.system_message(system, "maintenance at noon")  # no author, unread
    orphaned = make_room(users.dave, [bob], "orphaned")
    send(users.dave, orphaned, "from a deleted account")
    direct = room_service.create_room(bob, {"type": "direct", "members": [users.erin.pk]})
    send(users.erin, direct.data["room"]["id"], "psst")
    room_service.create_room(bob, {"type": "direct", "members": [carol.pk]})  # read, empty
    get_user_model().objects.filter(pk=users.dave.pk).delete()  # author becomes NULL


async def test_the_loop_and_the_orm_agree_on_every_kind_of_room(users, chat_options):
    chat_options(MESSAGE_SOFT_DELETE=True)
    await database_sync_to_async(build_mixed_rooms)(users)
    room_ids, summary = await assert_same(users.bob)
    assert len(room_ids) == 9
    names = [room["name"] or room["type"] for room in summary["rooms"]]
    assert names == ["direct", "orphaned", "system", "soft-deleted", "edited", "busy"]
    busy = summary["rooms"][-1]
    assert busy["unread_count"] == 3 and busy["member_count"] == 3
    assert busy["last_message"]["reactions"] == [
        {"emoji": "tada", "user_ids": [users.alice.pk, users.bob.pk]},
        {"emoji": "+1", "user_ids": [users.carol.pk, users.alice.pk]},
    ]
    assert summary["rooms"][0]["peer"]["id"] == users.erin.pk
    assert summary["rooms"][1]["last_message"]["author"] is None
    assert summary["rooms"][3]["last_message"]["is_deleted"] is True
    assert summary["has_more"] is False
    await assert_same(users.carol)  # own messages, reactions, a direct room with nothing new
    await assert_same(users.bob, with_notifications=False)


async def test_the_loop_and_the_orm_agree_on_a_bounded_summary(users, chat_options):
    chat_options(NOTIFICATION_MAX_ROOMS=2)

    def rooms():
        made = [make_room(users.alice, [users.bob], f"r{i}") for i in range(4)]
        return made, [seq_of(send(users.alice, room_id, "hi")) for room_id in made]

    made, seqs = await database_sync_to_async(rooms)()
    _, summary = await assert_same(users.bob)
    assert [room["name"] for room in summary["rooms"]] == ["r3", "r2"]
    assert summary["has_more"] is True
    await database_sync_to_async(message_service.mark_read)(users.bob, {made[3]: seqs[3]})
    _, summary = await assert_same(users.bob)  # exactly as many as shown: no more
    assert [room["name"] for room in summary["rooms"]] == ["r2", "r1"]
    await database_sync_to_async(message_service.mark_read)(users.bob, {made[2]: seqs[2]})
    _, summary = await assert_same(users.bob)
    assert [room["name"] for room in summary["rooms"]] == ["r1", "r0"]
    assert summary["has_more"] is False


async def test_a_user_without_rooms_or_unread_messages(users):
    assert await assert_same(users.erin) == ([], {"rooms": [], "has_more": False})
    await database_sync_to_async(make_room)(users.alice, [users.erin], "quiet")
    room_ids, summary = await assert_same(users.erin)
    assert len(room_ids) == 1 and summary == {"rooms": [], "has_more": False}


@database_sync_to_async
def last_query_of(pid):
    with connection.cursor() as cursor:
        cursor.execute("SELECT application_name, query FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()


async def test_the_loop_runs_them_on_its_own_connection(users, monkeypatch):
    await database_sync_to_async(make_room)(users.alice, [users.bob], "g")
    monkeypatch.setattr(orm, "opened_now", None)  # fails if called
    room_ids, _, open_sockets = await runtime.connected(users.bob, "chan", True)
    assert open_sockets == 1
    assert len(room_ids) == 1
    loop_connection = runtime.storage_of_this_loop().connection  # conftest started the loop
    application, query = await last_query_of(loop_connection._connection.info.backend_pid)
    assert application == APPLICATION_NAME and query.startswith("WITH page")


async def test_timestamps_read_on_the_loop_are_in_djangos_zone(users, monkeypatch):
    """libpq takes the session's zone from PGTZ (or the server's default); payloads must not."""
    await runtime.stop()
    monkeypatch.setenv("PGTZ", "America/New_York")
    runtime.start(asyncio.get_running_loop())
    store = runtime.storage_of_this_loop().connection
    room_id = await database_sync_to_async(make_room)(users.alice, [users.bob], "g")
    await database_sync_to_async(send)(users.alice, room_id, "hi")
    _, summary = await assert_same(users.bob)
    assert summary["rooms"][0]["last_message"]["created_at"].endswith("+00:00")
    assert store._connection.info.parameter_status("TimeZone") == "UTC"


async def test_a_connect_leaves_its_task_no_django_connection_to_keep(users):
    """On the event loop django.db.connection is per task: a socket's task that touched it
    would hold a database wrapper for as long as the socket is open."""

    def room_with_unread():
        send(users.alice, make_room(users.alice, [users.bob], "g"), "hi")

    await database_sync_to_async(room_with_unread)()
    # The first connect opens the loop's connection and asks what is asked once per process.
    await runtime.connected(users.bob, "first", True)

    async def connect_in_a_task_of_its_own():
        _, summary, _ = await runtime.connected(users.bob, "chan", True)
        return summary, getattr(connections._connections, DEFAULT_DB_ALIAS, None)

    task = asyncio.create_task(connect_in_a_task_of_its_own(), context=contextvars.Context())
    summary, wrapper = await task
    assert len(summary["rooms"]) == 1 and wrapper is None


async def test_connects_that_arrive_together_share_one_transaction(users, monkeypatch):
    """A reconnect storm commits (and fsyncs) once per batch of connects, not once per socket;
    each connect still sees the sockets opened before it in the batch."""
    await database_sync_to_async(make_room)(users.alice, [users.bob], "g")
    await runtime.connected(users.bob, "warm", True)  # opens the loop's connection
    loop_connection = runtime.storage_of_this_loop().connection
    transactions = []
    run = loop_connection.run

    async def counted_run(statements):
        transactions.append(len(statements))
        return await run(statements)

    monkeypatch.setattr(loop_connection, "run", counted_run)
    who = [users.bob] * 5 + [users.alice] * 3
    answers = await asyncio.gather(
        *(runtime.connected(user, f"together-{i}", True) for i, user in enumerate(who))
    )
    # A batch: the sessions, the open-socket counts and the rooms, then a summary per connect.
    assert len(transactions) <= 2 and sum(transactions) == 3 * len(transactions) + len(who)
    assert [answer.open_sockets for answer in answers] == [2, 3, 4, 5, 6, 1, 2, 3]
    assert all(len(answer.room_ids) == 1 for answer in answers)
    assert [answer.summary is not None for answer in answers] == [True] * len(who)
    channels = [f"together-{i}" for i in range(len(who))]
    stored = await Session.objects.filter(channel_name__in=channels, closed_at=None).acount()
    assert stored == len(who)
