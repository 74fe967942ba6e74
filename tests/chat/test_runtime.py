"""chat.runtime: the storage is chosen once per started event loop, and stop() releases it."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

from chatserver.chat import runtime, storage
from chatserver.chat.delivery import presence
from chatserver.chat.delivery.localgroups import LocalGroups, local_groups
from chatserver.chat.services import rooms as room_service
from chatserver.chat.storage.event_loop import EventLoopConnectState, EventLoopMessageStore
from chatserver.chat.storage.orm import OrmConnectState, OrmMessageStore


async def test_a_started_loop_stores_the_way_its_database_allows_until_it_is_stopped():
    loop = asyncio.get_running_loop()  # conftest started it
    chosen = runtime.storage_of_this_loop()
    if connection.vendor == "postgresql":
        assert isinstance(chosen.messages, EventLoopMessageStore)
        assert isinstance(chosen.connects, EventLoopConnectState)
        assert chosen.messages.connection is chosen.connects.connection is chosen.connection
    else:
        assert chosen is storage.PORTABLE
    runtime.start(loop)  # idempotent: the same storage, not a second connection
    assert runtime.storage_of_this_loop() is chosen
    await runtime.stop()
    assert runtime.storage_of_this_loop() is storage.PORTABLE
    await runtime.stop()  # nothing left to stop: no error
    runtime.start(loop)  # as conftest expects to find it


def test_the_portable_storage_is_the_orm_in_the_database_thread():
    assert isinstance(storage.PORTABLE.messages, OrmMessageStore)
    assert isinstance(storage.PORTABLE.connects, OrmConnectState)
    assert storage.for_database("sqlite") is storage.PORTABLE
    assert storage.PORTABLE.connection is None


@database_sync_to_async
def make_room(owner):
    data = {"type": "group", "name": "g", "members": []}
    return room_service.create_room(owner, data).data["room"]["id"]


@pytest.mark.django_db(transaction=True)
async def test_stop_closes_the_loops_database_connection(users):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only (make test runs it there)")
    room_id = await make_room(users.alice)
    await runtime.store_sends([(users.alice, room_id, {"content": "x"})])
    loop_connection = runtime.storage_of_this_loop().connection
    opened = loop_connection._connection
    assert opened is not None and not opened.closed
    await runtime.stop()
    assert opened.closed and loop_connection._connection is None
    runtime.start(asyncio.get_running_loop())


async def test_stop_closes_the_presence_hub_then_the_local_groups_and_forgets_them():
    layer = get_channel_layer()
    groups, hub = local_groups(layer), presence.hub(layer)
    assert local_groups(layer) is groups and presence.hub(layer) is hub  # one per loop and layer
    assert groups in runtime.every(LocalGroups)
    closed = []
    for name, found in (("groups", groups), ("hub", hub)):

        async def close(name=name, real=found.close):
            closed.append(name)
            await real()

        found.close = close
    await runtime.stop()
    assert closed == ["hub", "groups"]  # newest first: the hub publishes through the groups
    assert groups not in runtime.every(LocalGroups)
    runtime.start(asyncio.get_running_loop())
    assert local_groups(layer) is not groups
