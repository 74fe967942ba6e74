import pytest

pytestmark = pytest.mark.django_db(transaction=True)


async def test_group_message_reaches_other_member(connect, users):
    alice, bob = users.alice, users.bob
    a, b = await connect(alice), await connect(bob)
    created = await a.ok("room.create", {"type": "group", "name": "team", "members": [bob.pk]})
    room_id = created["room"]["id"]
    assert (await b.expect("roomcreate.dispatch"))["room"]["id"] == room_id
    sent = await a.ok("message.send", {"room_id": room_id, "content": "hi"}, "message.dispatch")
    got = await b.expect("message.dispatch")
    assert got == sent
    assert got["seq"] == 2
