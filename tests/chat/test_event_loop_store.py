"""Messages stored on the event loop's own PostgreSQL connection (chat/storage/event_loop.py).

PostgreSQL only: ``make test`` runs the chat tests on PostgreSQL too. Every other chat test
that sends a message goes this way there as well (conftest starts chat.runtime on each test's loop).
"""

import asyncio
import gc
import logging
import threading
import warnings

import psycopg
import pytest
from channels.db import database_sync_to_async
from django.db import OperationalError, connection, connections, transaction

from chatserver.chat import runtime, storage
from chatserver.chat.models import Message, Room, RoomEvent
from chatserver.chat.protocol import ERROR_UNAVAILABLE, ProtocolError
from chatserver.chat.services import eventlog
from chatserver.chat.services import messages as messages_service
from chatserver.chat.services import rooms as room_service
from chatserver.chat.storage import loop_connection, message_sql
from chatserver.chat.storage.orm import run_now

from .races import room_row_held, store_a_resend_and_hold, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="PostgreSQL only (make test runs it there)"
    ),
]


def make_room(owner, members, name="g"):
    data = {"type": "group", "name": name, "members": [m.pk for m in members]}
    return room_service.create_room(owner, data).data["room"]["id"]


@database_sync_to_async
def last_query_of(pid):
    with connection.cursor() as cursor:
        cursor.execute("SELECT application_name, query FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()


@database_sync_to_async
def rows_of(room_id):
    stored = Message.objects.filter(room_id=room_id).order_by("seq")
    events = RoomEvent.objects.filter(room_id=room_id, message_id__isnull=False).order_by("seq")
    return (
        [(m.seq, m.author_id, m.content, m.client_msg_id) for m in stored],
        [(e.seq, e.event_type, e.message_id) for e in events],
        [m.pk for m in stored],
        Room.objects.get(pk=room_id).last_seq,
    )


def store_of_this_loop():
    return runtime.storage_of_this_loop().connection  # conftest started the loop


def backend_pid():
    return store_of_this_loop()._connection.info.backend_pid


async def test_a_message_sent_on_a_socket_is_stored_by_the_loops_connection(users, connect):
    room_id = await database_sync_to_async(make_room)(users.alice, [users.bob])
    alice, bob = await connect(users.alice), await connect(users.bob)
    reply = await alice.ok("message.send", {"room_id": room_id, "content": "hi"})
    assert (await bob.expect("message.dispatch"))["seq"] == reply["seq"] == 2
    application, query = await last_query_of(backend_pid())
    assert application == loop_connection.APPLICATION_NAME
    assert query.startswith("WITH batch")
    stored, events, ids, last_seq = await rows_of(room_id)
    assert stored == [(2, users.alice.pk, "hi", None)]
    assert events == [(2, eventlog.MESSAGE_CREATED, ids[0])] and last_seq == 2
    assert reply["message"]["id"] == ids[0]


def answers(outcomes):
    """Outcomes without what differs between two rooms: ids, times, the client_msg_id tag."""
    result = []
    for outcome in outcomes:
        if isinstance(outcome, ProtocolError):
            result.append(outcome.code)
            continue
        data, duplicate = outcome
        message = data["message"]
        _, _, client_msg_id = (message["client_msg_id"] or "-").partition("-")
        result.append((data["seq"], message["content"], client_msg_id or None, duplicate))
    return result


async def test_a_batch_gets_the_answers_the_database_thread_gives(users):
    """Fresh sends, a resend of a stored message, a resend inside the batch and an invalid
    send, in one room: the loop answers each as the thread path does, in one statement."""
    loop_room, thread_room = [
        await database_sync_to_async(make_room)(users.alice, [users.bob], name)
        for name in ("loop", "thread")
    ]

    def batch(room_id, tag):
        return [
            (users.alice, room_id, {"content": "a", "client_msg_id": f"{tag}-1"}),
            (users.bob, room_id, {"content": "b"}),
            (users.alice, room_id, {"content": "a again", "client_msg_id": f"{tag}-1"}),
            (users.bob, room_id, {}),  # no content
        ]

    first = await runtime.store_sends(batch(loop_room, "loop"))
    again = await runtime.store_sends(batch(loop_room, "loop"))
    expected_first = await storage.PORTABLE.messages.store_sends(batch(thread_room, "thread"))
    expected_again = await storage.PORTABLE.messages.store_sends(batch(thread_room, "thread"))
    assert answers(first) == answers(expected_first)
    assert answers(again) == answers(expected_again)
    assert answers(first) == [
        (2, "a", "1", False),
        (3, "b", None, False),
        (2, "a", "1", True),  # the resend inside the batch: the first copy
        4003,
    ]
    assert [a if isinstance(a, int) else a[3] for a in answers(again)] == [True, False, True, 4003]
    ids = {outcome[0]["message"]["id"] for outcome in (first[0], first[2], again[0], again[2])}
    assert len(ids) == 1
    loop_rows, thread_rows = await rows_of(loop_room), await rows_of(thread_room)
    assert loop_rows[0] == [
        (2, users.alice.pk, "a", "loop-1"),
        (3, users.bob.pk, "b", None),
        (4, users.bob.pk, "b", None),
    ]
    assert [(seq, author, content) for seq, author, content, _ in loop_rows[0]] == [
        (seq, author, content) for seq, author, content, _ in thread_rows[0]
    ]
    assert [event[:2] for event in loop_rows[1]] == [event[:2] for event in thread_rows[1]]
    assert loop_rows[3] == thread_rows[3] == 4


async def test_a_batch_of_several_rooms_gets_the_answers_the_database_thread_gives(users):
    """Each room's messages take that room's seqs in request order, whatever the order of the
    rooms in the batch; a room deleted meanwhile is 4004 for its sends alone."""
    make = database_sync_to_async(make_room)
    loop_rooms = [await make(users.alice, [users.bob], f"loop{i}") for i in range(3)]
    thread_rooms = [await make(users.alice, [users.bob], f"thread{i}") for i in range(3)]
    for rooms in (loop_rooms, thread_rooms):
        await database_sync_to_async(Room.objects.filter(pk=rooms[2]).delete)()

    def batch(rooms, tag):
        second, first, gone = rooms[1], rooms[0], rooms[2]
        return [
            (users.bob, second, {"content": "s1", "client_msg_id": f"{tag}-1"}),
            (users.alice, first, {"content": "f1"}),
            (users.alice, gone, {"content": "g1"}),
            (users.bob, second, {"content": "s2"}),
            (users.bob, first, {"content": "s1 again", "client_msg_id": f"{tag}-1"}),
            (users.alice, first, {"content": "f2"}),
        ]

    outcomes = await runtime.store_sends(batch(loop_rooms, "loop"))
    expected = await storage.PORTABLE.messages.store_sends(batch(thread_rooms, "thread"))
    assert answers(outcomes) == answers(expected)
    assert answers(outcomes) == [
        (2, "s1", "1", False),
        (2, "f1", None, False),
        4004,
        (3, "s2", None, False),
        4005,  # the client_msg_id names a message in another room
        (3, "f2", None, False),
    ]
    assert [row[2] for row in (await rows_of(loop_rooms[0]))[0]] == ["f1", "f2"]
    assert [row[2] for row in (await rows_of(loop_rooms[1]))[0]] == ["s1", "s2"]


async def test_a_batch_of_several_rooms_locks_their_rows_in_id_order(users):
    """The later room's row held by another connection: the batch's statement waits on it
    holding the earlier room's row already (ids in order, as the ORM's store locks them), so
    two daemons' batches over the same rooms queue instead of deadlocking."""
    make = database_sync_to_async(make_room)
    first, second = sorted([await make(users.alice, [users.bob], f"r{i}") for i in range(2)])
    await runtime.store_sends([(users.bob, first, {"content": "opens the connection"})])

    @database_sync_to_async
    def row_is_locked(room_id):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '100ms'")
            try:
                cursor.execute("SELECT 1 FROM chat_room WHERE id = %s FOR UPDATE", [room_id])
            except OperationalError:
                return True
            return False

    async with room_row_held(second):
        storing = asyncio.ensure_future(
            runtime.store_sends(
                [
                    (users.alice, second, {"content": "to the later room"}),
                    (users.alice, first, {"content": "to the earlier room"}),
                ]
            )
        )
        await waiting_on_a_lock(backend_pid())
        assert await row_is_locked(first)
    outcomes = await storing
    assert [outcome[0]["seq"] for outcome in outcomes] == [2, 3]
    assert not await row_is_locked(first)


async def test_a_send_to_a_deleted_room_is_4004(users):
    room_id = await database_sync_to_async(make_room)(users.alice, [])
    await database_sync_to_async(Room.objects.filter(pk=room_id).delete)()
    (outcome,) = await runtime.store_sends([(users.alice, room_id, {"content": "x"})])
    assert isinstance(outcome, ProtocolError) and outcome.code == 4004
    assert await database_sync_to_async(Message.objects.filter(room_id=room_id).count)() == 0


async def waiting_on_a_lock(pid):
    @database_sync_to_async
    def wait_event_type():
        with connection.cursor() as cursor:
            cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
            return cursor.fetchone()[0]

    async def waiting():
        return await wait_event_type() == "Lock"

    await wait_for(waiting)  # TimeoutError: the loop's statement never waited on the lock


@pytest.mark.parametrize("with_another_room", [False, True])
async def test_a_resend_racing_the_statement_is_answered_with_the_winner(users, with_another_room):
    """The statement fails on the unique constraint when another connection commits the same
    client_msg_id first: nothing of the batch is stored — with another room in the batch, not
    that room's message either, though its statement ran first — and the database thread
    stores it again, answering the resend with the winner's message."""
    alice, bob = users.alice, users.bob
    other_room = await database_sync_to_async(make_room)(alice, [bob], "other")  # lower id
    room_id = await database_sync_to_async(make_room)(alice, [bob])
    await runtime.store_sends([(bob, room_id, {"content": "opens the connection"})])
    elsewhere = [(alice, other_room, {"content": "elsewhere"})] if with_another_room else []
    holding, release, winner = threading.Event(), threading.Event(), {}
    holder = threading.Thread(
        target=store_a_resend_and_hold, args=(room_id, alice, holding, release, winner)
    )
    holder.start()
    try:
        assert await asyncio.to_thread(holding.wait, 10)
        batch = asyncio.ensure_future(
            runtime.store_sends(
                [
                    (bob, room_id, {"content": "before"}),
                    (alice, room_id, {"content": "w", "client_msg_id": "race"}),
                    (bob, room_id, {"content": "after"}),
                ]
                + elsewhere
            )
        )
        await waiting_on_a_lock(backend_pid())
    finally:
        release.set()
        await asyncio.to_thread(holder.join, 10)
    outcomes = await batch
    if with_another_room:
        assert outcomes.pop()[0]["seq"] == 2
        assert [row[:3] for row in (await rows_of(other_room))[0]] == [(2, alice.pk, "elsewhere")]
    assert [o[1] for o in outcomes] == [False, True, False]
    assert outcomes[1][0]["message"]["id"] == winner["id"]
    assert [o[0]["seq"] for o in outcomes] == [4, 3, 5]  # no seq lost, none twice
    stored, events, _, last_seq = await rows_of(room_id)
    assert [row[0] for row in stored] == [2, 3, 4, 5] and last_seq == 5
    assert [event[0] for event in events] == [2, 3, 4, 5]


async def test_a_cancelled_statement_drops_the_connection_and_the_next_one_reconnects(users):
    room_id = await database_sync_to_async(make_room)(users.alice, [])
    await runtime.store_sends([(users.alice, room_id, {"content": "first"})])
    pid = backend_pid()
    async with room_row_held(room_id):
        batch = asyncio.ensure_future(
            runtime.store_sends([(users.alice, room_id, {"content": "cancelled"})])
        )
        await waiting_on_a_lock(pid)
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch
        assert store_of_this_loop()._connection is None
    (outcome,) = await runtime.store_sends([(users.alice, room_id, {"content": "next"})])
    assert backend_pid() != pid
    stored, _, _, last_seq = await rows_of(room_id)
    assert [content for _, _, content, _ in stored] == ["first", "next"]  # cancelled in time
    assert outcome[0]["seq"] == last_seq == 3


async def test_a_connection_the_server_closed_while_idle_is_replaced_before_use(users):
    """The server dropped the idle connection (a restart, pg_terminate_backend): the next batch
    notices before it sends anything, and goes on a new connection."""
    room_id = await database_sync_to_async(make_room)(users.alice, [])
    await runtime.store_sends([(users.alice, room_id, {"content": "first"})])
    pid = backend_pid()

    @database_sync_to_async
    def terminate():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])

    await terminate()
    await wait_for(lambda: loop_connection.hung_up(store_of_this_loop()._connection))
    (outcome,) = await runtime.store_sends([(users.alice, room_id, {"content": "next"})])
    assert backend_pid() != pid
    stored, _, _, last_seq = await rows_of(room_id)
    assert [content for _, _, content, _ in stored] == ["first", "next"]
    assert outcome[0]["seq"] == last_seq == 3


async def test_without_a_connection_batches_are_refused_with_4503_until_it_is_back(
    users, monkeypatch, caplog
):
    """The loop cannot reach the database (here: a port nothing listens on): its batches are
    answered 4503, with one warning, not stored another way; the next batch after the database
    is back connects again."""
    caplog.set_level(logging.INFO, logger=loop_connection.__name__)
    room_id = await database_sync_to_async(make_room)(users.alice, [])
    django_params = connection.get_connection_params

    def unreachable():
        return {**django_params(), "host": "127.0.0.1", "port": 9, "connect_timeout": 2}

    monkeypatch.setattr(connections["default"], "get_connection_params", unreachable)
    for content in ("one", "two"):
        with pytest.raises(ProtocolError) as refused:
            await runtime.store_sends([(users.alice, room_id, {"content": content})])
        assert refused.value.code == ERROR_UNAVAILABLE
    assert store_of_this_loop()._connection is None
    warnings = [r for r in caplog.records if r.name == loop_connection.__name__]
    assert [r.levelname for r in warnings] == ["WARNING"]
    monkeypatch.undo()
    await runtime.store_sends([(users.alice, room_id, {"content": "three"})])
    assert store_of_this_loop()._connection is not None
    stored, _, _, last_seq = await rows_of(room_id)
    assert [content for _, _, content, _ in stored] == ["three"]
    assert last_seq == 2
    assert [r.levelname for r in caplog.records if r.name == loop_connection.__name__] == [
        "WARNING",
        "INFO",
    ]


async def test_a_loop_nobody_started_stores_through_the_database_thread(users):
    room_id = await database_sync_to_async(make_room)(users.alice, [])
    await runtime.stop()
    (outcome,) = await runtime.store_sends([(users.alice, room_id, {"content": "x"})])
    assert outcome[0]["seq"] == 2
    # Stored by the database thread: no loop connection is open (an earlier test's closed one
    # may take a moment to leave pg_stat_activity).
    await wait_for(no_loop_connection)


@database_sync_to_async
def no_loop_connection():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            [loop_connection.APPLICATION_NAME],
        )
        return cursor.fetchone()[0] == 0


async def test_statements_are_prepared_unless_the_database_options_say_otherwise(
    users, monkeypatch
):
    room_id = await database_sync_to_async(make_room)(users.alice, [])
    await runtime.store_sends([(users.alice, room_id, {"content": "x"})])
    assert store_of_this_loop()._connection.prepare_threshold == 5  # psycopg's default
    await runtime.stop()
    options = connections["default"].settings_dict["OPTIONS"]
    monkeypatch.setitem(options, "prepare_threshold", None)
    runtime.start(asyncio.get_running_loop())
    await runtime.store_sends([(users.alice, room_id, {"content": "y"})])
    assert store_of_this_loop()._connection.prepare_threshold is None


async def test_the_prepared_insert_probes_the_message_index_in_its_generic_plan(users):
    """A generic plan is made once, maybe while the tables are small, and kept as they grow:
    for a batch of any size it must look resends up by index, not hash the whole message table
    (which made every batch slower as messages piled up). Batches of every size share the one
    statement (its arrays are the batch's columns)."""
    room_id = await database_sync_to_async(make_room)(users.alice, [])
    for i in range(8):  # prepared after five runs
        for size in (1, 2, 3):
            batch = [{"content": "m", "client_msg_id": f"{i}-{size}-{k}"} for k in range(size)]
            await runtime.store_sends([(users.alice, room_id, data) for data in batch])
    connection = store_of_this_loop()._connection
    await connection.execute("ANALYZE chat_message, chat_room")  # a small site's statistics
    await connection.execute("SET plan_cache_mode = force_generic_plan")
    prepared = await connection.execute(
        "SELECT name FROM pg_prepared_statements WHERE statement LIKE 'WITH batch%%'"
    )
    (name,) = [row[0] for row in await prepared.fetchall()]
    plans = {}
    for size in (1, 3):
        messages = {
            k: Message(room_id=room_id, author=users.alice, content="x") for k in range(size)
        }
        _, params = message_sql.statement({room_id: messages})
        cursor = psycopg.AsyncClientCursor(connection)
        await cursor.execute(f"EXPLAIN EXECUTE {name}({', '.join(['%s'] * len(params))})", params)
        plans[size] = "\n".join(row[0] for row in await cursor.fetchall())
    await connection.execute("RESET plan_cache_mode")
    for size, plan in plans.items():
        assert "Seq Scan on chat_message" not in plan and "hashed" not in plan, (size, plan)
        assert "using chat_message_client_msg_id on chat_message" in plan, (size, plan)


async def test_a_connection_that_cannot_be_set_up_is_closed_not_kept(users, monkeypatch):
    """OPTIONS naming a role that does not exist: the batch fails, as Django's own connection
    would, and the half-set-up connection is closed, not kept or left to the garbage collector
    (psycopg warns about a connection deleted while open)."""
    room_id = await database_sync_to_async(make_room)(users.alice, [])
    options = connections["default"].settings_dict["OPTIONS"]
    monkeypatch.setitem(options, "assume_role", "no_such_role")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(psycopg.Error):
            await runtime.store_sends([(users.alice, room_id, {"content": "x"})])
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], caught
    assert store_of_this_loop()._connection is None
    monkeypatch.undo()
    (outcome,) = await runtime.store_sends([(users.alice, room_id, {"content": "y"})])
    assert outcome[0]["seq"] == 2


@database_sync_to_async
def stored_by_the_orm(per_room, outcomes):
    return run_now(storage.PORTABLE.messages.store_rooms(per_room, outcomes))


async def test_the_statement_stores_the_rows_the_orm_stores(users):
    """storage/message_sql.py and storage/orm.py write the same rows, log events included."""
    room_id = await database_sync_to_async(make_room)(users.alice, [users.bob])
    ((parent, _),) = await runtime.store_sends([(users.alice, room_id, {"content": "parent"})])

    def batch(tag):
        return [
            Message(
                room_id=room_id,
                author=users.bob,
                content="reply",
                client_msg_id=f"{tag}-1",
                parent_id=parent["message"]["id"],
            ),
            # What JSON escapes, and what a text array would have to quote.
            Message(room_id=room_id, author=users.alice, content='"q" \\ {NULL},\nü 😀'),
        ]

    fast, orm = batch("fast"), batch("orm")
    loop_store = runtime.storage_of_this_loop().messages
    stored = await loop_store.store_rooms({room_id: dict(enumerate(fast))}, [None, None])
    assert stored == dict(enumerate(fast))
    await stored_by_the_orm({room_id: dict(enumerate(orm))}, [None, None])
    assert [m.seq for m in fast + orm] == [3, 4, 5, 6]

    @database_sync_to_async
    def row(message):
        stored = Message.objects.get(pk=message.pk)
        event = RoomEvent.objects.get(room_id=room_id, seq=stored.seq)
        assert (event.message_id, event.event_type) == (stored.pk, "message.dispatch")
        assert event.data == {}
        assert stored.created_at is not None and event.created_at is not None
        if message in fast:  # read back exactly as the statement was given it
            assert (stored.created_at, stored.content) == (message.created_at, message.content)
        values = {f.attname: getattr(stored, f.attname) for f in Message._meta.concrete_fields}
        for name in ("id", "seq", "created_at"):
            values.pop(name)
        values["client_msg_id"] = (values["client_msg_id"] or "").partition("-")[2]
        return values

    assert [await row(m) for m in fast] == [await row(m) for m in orm]
    assert (await rows_of(room_id))[3] == 6


async def test_the_statement_stores_nothing_in_a_deleted_room(users):
    room_id = await database_sync_to_async(make_room)(users.alice, [])
    await database_sync_to_async(Room.objects.filter(pk=room_id).delete)()
    count = database_sync_to_async(lambda: (Message.objects.count(), RoomEvent.objects.count()))
    before = await count()
    loop_store = runtime.storage_of_this_loop().messages
    message = Message(room_id=room_id, author=users.alice)
    assert await loop_store.store_rooms({room_id: {0: message}}, [None]) == {}
    assert await count() == before


async def test_a_system_message_is_stored_by_the_loops_statement(users):
    """No author, kind system, the room's next seq; 4004 for a room that does not exist."""
    room_id = await database_sync_to_async(make_room)(users.alice, [])
    loop_store = runtime.storage_of_this_loop().messages
    data = await loop_store.system_message(room_id, "maintenance at noon")
    assert data["seq"] == 2 and data["message"]["author"] is None
    _, query = await last_query_of(backend_pid())
    assert query.startswith("WITH batch")
    stored, events, ids, last_seq = await rows_of(room_id)
    assert stored == [(2, None, "maintenance at noon", None)] and last_seq == 2
    assert events == [(2, eventlog.MESSAGE_CREATED, ids[0])]
    kind = await database_sync_to_async(lambda: Message.objects.get(pk=ids[0]).kind)()
    assert kind == Message.SYSTEM
    with pytest.raises(ProtocolError) as refused:
        await loop_store.system_message(10**9, "nowhere")
    assert refused.value.code == 4004


async def test_a_reply_is_validated_in_the_thread_and_stored_by_the_loops_statement(users):
    room_id = await database_sync_to_async(make_room)(users.alice, [users.bob])
    send = database_sync_to_async(messages_service.send_message)
    parent, _ = await send(users.alice, room_id, {"content": "parent"})  # through the ORM
    assert store_of_this_loop()._connection is None  # the loop's connection opens at first use
    reply = {"content": "re", "parent_message_id": parent["message"]["id"]}
    elsewhere = {"content": "x", "parent_message_id": 10**9}
    (answer, refused) = await runtime.store_sends(
        [(users.bob, room_id, reply), (users.bob, room_id, elsewhere)]
    )
    assert answer[0]["message"]["parent_message_id"] == parent["message"]["id"]
    assert isinstance(refused, ProtocolError) and refused.code == 4004
    _, query = await last_query_of(backend_pid())
    assert query.startswith("WITH batch")
