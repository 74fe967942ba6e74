"""After PostgreSQL dropped the database thread's connection (a restart), the next call works:
the housekeeping jobs and a failure of the event loop's connection check it first
(chat/reconnect.py). PostgreSQL only: make test runs the chat tests there too."""

import asyncio

import psycopg
import pytest
from channels.db import database_sync_to_async
from django.db import connection

from chatserver.chat import runtime, sessions
from chatserver.chat.models import Room
from chatserver.chat.protocol import ERROR_UNAVAILABLE, ProtocolError
from chatserver.chat.services import rooms as room_service
from chatserver.chat.storage import loop_connection

from .races import room_row_held, wait_for
from .test_event_loop_store import waiting_on_a_lock

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="PostgreSQL only (make test runs it there)"
    ),
]


@database_sync_to_async
def thread_backend_pid():
    connection.ensure_connection()
    return connection.connection.info.backend_pid


def terminate(*pids):
    """As a restart does to every connection, from a connection of the test's own."""
    params = connection.get_connection_params()
    for name in ("cursor_factory", "context"):
        params.pop(name, None)
    with psycopg.connect(**params, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])


@database_sync_to_async
def make_room(owner):
    data = {"type": "group", "name": "g", "members": []}
    return room_service.create_room(owner, data).data["room"]["id"]


async def test_the_sweeper_and_the_reaper_work_on_the_first_run_after_a_restart(users):
    terminate(await thread_backend_pid())
    assert await sessions.expire_silent_sessions(60) == 0
    terminate(await thread_backend_pid())
    assert await sessions.reap_sessions(3600) == 0


async def test_a_restart_noticed_by_the_loop_gets_the_thread_connection_checked(users):
    """Both connections dropped: the loop notices before it sends (the server closed its idle
    connection), stores the batch on a new one, and has the thread's dead one replaced."""
    room_id = await make_room(users.alice)
    await runtime.store_sends([(users.alice, room_id, {"content": "first"})])
    store = runtime.storage_of_this_loop().connection
    loop_pid = store._connection.info.backend_pid
    terminate(await thread_backend_pid(), loop_pid)
    await wait_for(lambda: loop_connection.hung_up(store._connection))
    (outcome,) = await runtime.store_sends([(users.alice, room_id, {"content": "next"})])
    assert outcome[0]["message"]["content"] == "next"
    assert store._connection.info.backend_pid != loop_pid
    # The thread's next query works: its dead connection was closed, a new one opened.
    assert await database_sync_to_async(Room.objects.filter(pk=room_id).exists)()


async def test_a_statement_cut_off_by_the_server_is_4503_and_the_thread_is_checked(users):
    """The connection breaks while the statement runs (it waits on a locked room when the
    server ends it, as a restart does): not retried, 4503; the thread's is replaced too."""
    room_id = await make_room(users.alice)
    await runtime.store_sends([(users.alice, room_id, {"content": "first"})])
    store = runtime.storage_of_this_loop().connection
    loop_pid = store._connection.info.backend_pid
    async with room_row_held(room_id):
        batch = asyncio.ensure_future(
            runtime.store_sends([(users.alice, room_id, {"content": "cut off"})])
        )
        await waiting_on_a_lock(loop_pid)
        terminate(await thread_backend_pid(), loop_pid)
        with pytest.raises(ProtocolError) as refused:
            await batch
        assert refused.value.code == ERROR_UNAVAILABLE
    assert await database_sync_to_async(Room.objects.filter(pk=room_id).exists)()
    (outcome,) = await runtime.store_sends([(users.alice, room_id, {"content": "next"})])
    assert outcome[0]["seq"] == 3  # "cut off" was not stored


async def test_a_heartbeat_on_a_dead_thread_connection_is_4503_then_works(users):
    terminate(await thread_backend_pid())
    with pytest.raises(ProtocolError) as refused:
        await sessions.touch_session("no-such-channel")
    assert refused.value.code == ERROR_UNAVAILABLE
    assert await sessions.touch_session("no-such-channel") is False  # Django reconnected


async def test_a_healthy_connection_is_kept_from_batch_to_batch(users):
    """Nothing is left unread on the connection after a batch (one room: one statement; several
    rooms: a pipeline), so the look at its socket never mistakes it for a dropped one."""
    rooms = [await make_room(users.alice) for _ in range(2)]
    await runtime.store_sends([(users.alice, rooms[0], {"content": "first"})])
    store = runtime.storage_of_this_loop().connection
    pid = store._connection.info.backend_pid
    for i in range(5):
        await runtime.store_sends([(users.alice, rooms[0], {"content": f"one {i}"})])
        await runtime.store_sends(
            [(users.alice, room_id, {"content": f"two {i}"}) for room_id in rooms]
        )
        assert not loop_connection.hung_up(store._connection)
    assert store._connection.info.backend_pid == pid
