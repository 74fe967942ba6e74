"""Access to rooms, loaded for many (user, room) pairs at once (permissions.load_accesses)."""

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from guardian.shortcuts import get_user_perms

from chatserver.chat.consumers import access_loader
from chatserver.chat.models import Membership, Room
from chatserver.chat.services import rooms as room_service
from chatserver.chat.services.permissions import VIEW, Access, load_access, load_accesses

from .races import HeldBatches

pytestmark = pytest.mark.django_db(transaction=True)


def create(owner, kind, members=(), **extra):
    data = {"type": kind, "members": [m.pk for m in members], **extra}
    if kind != "direct":
        data["name"] = kind
    return room_service.create_room(owner, data).data["room"]["id"]


def guardians_answer(user, room_id):
    """What one connection would have loaded alone: the membership and guardian's perms."""
    membership = Membership.objects.filter(user=user, room_id=room_id).select_related("room")
    membership = membership.first()
    if membership is None:
        return None
    perms = frozenset(get_user_perms(user, membership.room))
    if VIEW not in perms:
        return None
    return Access(room_id, membership.room.kind, membership.role, perms)


@pytest.fixture
def world(users):
    """Rooms of every kind and role, and an inactive member."""
    alice, bob, carol, dave, erin = (
        users.alice,
        users.bob,
        users.carol,
        users.dave,
        users.erin,
    )
    rooms = [
        create(alice, "group", [bob, carol]),
        create(alice, "group", [carol], locked=True),  # carol may only view
        create(bob, "channel", [carol, dave]),
        create(alice, "direct", [dave]),
    ]
    room_service.modify_room(
        alice,
        load_access(alice, rooms[0]),
        rooms[0],
        {"room_id": rooms[0], "action": "add_admin", "members": [bob.pk]},
    )
    erin.is_active = False  # still a member of the first room, but cannot use it
    erin.save(update_fields=["is_active"])
    Membership.objects.create(room_id=rooms[0], user=erin, role=Membership.MEMBER)
    missing = Room.objects.order_by("-pk").first().pk + 1
    return [alice, bob, carol, dave, erin], rooms + [missing]


def test_every_pair_gets_what_guardian_gives_it_alone(world):
    people, rooms = world
    pairs = [(user, room_id) for user in people for room_id in rooms]
    loaded = load_accesses(pairs)
    assert loaded == [guardians_answer(user, room_id) for user, room_id in pairs]
    assert sum(access is not None for access in loaded) == 10  # not a table of Nones
    alice_direct = loaded[pairs.index((people[0], rooms[3]))]
    assert alice_direct.kind == Room.DIRECT and alice_direct.perms == {VIEW, "send_message"}
    assert loaded[pairs.index((people[2], rooms[1]))].perms == {VIEW}  # the locked group


def test_loading_many_pairs_costs_the_queries_of_one(world):
    people, rooms = world
    load_accesses([(people[0], rooms[0])])  # warms the content-type cache

    def queries(pairs):
        with CaptureQueriesContext(connection) as ctx:
            load_accesses(pairs)
        return len(ctx.captured_queries)

    assert queries([(people[0], rooms[0])]) == 2
    assert queries([(user, room_id) for user in people for room_id in rooms]) == 2


async def test_first_requests_of_many_connections_load_their_access_together(
    connect, users, monkeypatch
):
    held = HeldBatches(monkeypatch, access_loader)
    group = await database_sync_to_async(create)(users.alice, "group", [users.bob, users.carol])
    clients = [await connect(user) for user in (users.alice, users.bob, users.carol, users.dave)]
    for i, client in enumerate(clients):
        await client.send("room.info", {"room_id": group}, f"info{i}")
    # Every request waits: in the held batch or queued behind it.
    await held.until(lambda: sum(held.sizes) + held.waiting() == 4, "requests did not queue")
    held.gate.set()
    replies = [await client.recv() for client in clients]
    assert sum(held.sizes) == 4 and len(held.sizes) <= 2, held.sizes  # not one per connection
    assert [reply["request_id"] for reply in replies] == ["info0", "info1", "info2", "info3"]
    assert [reply["eventType"] for reply in replies[:3]] == ["roominfo.dispatch"] * 3
    assert replies[3]["eventType"] == "error" and replies[3]["error"]["code"] == 4004
