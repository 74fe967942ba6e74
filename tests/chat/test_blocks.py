"""Blocking, and room invitations that do not enumerate users or tell who blocked whom."""

import pytest

RATE_CLASSES = ("send", "typing", "read", "manage")

pytestmark = pytest.mark.django_db(transaction=True)

CANNOT_ADD = {"code": 4002, "detail": "Some of these users cannot be added."}


async def refusal(client, event, data):
    frame = await client.request(event, data)
    assert frame["eventType"] == "error", frame
    error = dict(frame["error"])
    error.pop("event_type")
    return error


async def test_blocked_unknown_and_inactive_users_are_refused_alike(connect, users, chat_options):
    chat_options(RATE_LIMITS={kind: {"rate": 100, "burst": 100} for kind in RATE_CLASSES})
    erin = await connect(users.erin)
    blocked = await erin.ok("user.block", {"user_id": users.alice.pk}, "userblock.dispatch")
    assert blocked == {"user_id": users.alice.pk, "blocked": True, "changed": True}
    users.dave.is_active = False
    await users.dave.asave()

    alice = await connect(users.alice)
    for target in (users.erin.pk, users.dave.pk, 10**9):
        for event, data in [
            ("room.create", {"type": "group", "name": "g", "members": [users.bob.pk, target]}),
            ("room.create", {"type": "direct", "members": [target]}),
        ]:
            assert await refusal(alice, event, data) == CANNOT_ADD, (target, event)
    room_id = (await alice.ok("room.create", {"type": "group", "name": "mine"}))["room"]["id"]
    for target in (users.erin.pk, users.dave.pk, 10**9):
        add = {"room_id": room_id, "members": [target]}
        assert await refusal(alice, "room.add_members", add) == CANNOT_ADD
    assert await erin.nothing()  # erin never heard of any of it

    # Someone erin did not block may add her; once unblocked, alice may too.
    bob = await connect(users.bob)
    await bob.ok("room.create", {"type": "direct", "members": [users.erin.pk]})
    await erin.expect("roomcreate.dispatch")
    unblocked = await erin.ok("user.unblock", {"user_id": users.alice.pk})
    assert unblocked == {"user_id": users.alice.pk, "blocked": False, "changed": True}
    await alice.ok("room.add_members", {"room_id": room_id, "members": [users.erin.pk]})


async def test_a_block_stops_reopening_an_existing_one_to_one(connect, users):
    alice, erin = await connect(users.alice), await connect(users.erin)
    await alice.ok("room.create", {"type": "direct", "members": [users.erin.pk]})
    await erin.expect("roomcreate.dispatch")
    await erin.ok("user.block", {"user_id": users.alice.pk})
    again = {"type": "direct", "members": [users.erin.pk]}
    assert await refusal(alice, "room.create", again) == CANNOT_ADD
    # erin, who blocks, may still open it from her side.
    await erin.ok("room.create", {"type": "direct", "members": [users.alice.pk]})


async def test_block_answers(connect, users):
    alice = await connect(users.alice)
    await alice.ok("user.block", {"user_id": users.bob.pk})
    again = await alice.ok("user.block", {"user_id": users.bob.pk})
    assert again == {"user_id": users.bob.pk, "blocked": True, "changed": False}
    assert await alice.error("user.block", {"user_id": users.alice.pk}) == 4002
    assert await alice.error("user.block", {"user_id": 10**9}) == 4004
    assert await alice.error("user.block", {"user_id": "x"}) == 4003
    nothing = await alice.ok("user.unblock", {"user_id": users.carol.pk})
    assert nothing == {"user_id": users.carol.pk, "blocked": False, "changed": False}
