"""Room events end to end through the ASGI application."""

import pytest
from channels.db import database_sync_to_async
from guardian.shortcuts import get_user_perms

from chatserver.chat.models import Membership, Room

pytestmark = pytest.mark.django_db(transaction=True)


async def group(client, *members, **extra):
    data = {"type": "group", "name": "team", "members": [m.pk for m in members], **extra}
    return (await client.ok("room.create", data, "roomcreate.dispatch"))["room"]["id"]


@database_sync_to_async
def perms_of(user, room_id):
    return set(get_user_perms(user, Room.objects.get(pk=room_id)))


async def test_create_group_tells_every_member_device_and_grants_roles(connect, users):
    a, b1 = await connect(users.alice), await connect(users.bob)
    b2 = await connect(users.bob)
    reply = await a.ok(
        "room.create",
        {"type": "group", "name": "team", "description": "d", "members": [users.bob.pk]},
    )
    assert reply["seq"] == 1 and reply["room"]["type"] == "group"
    assert {m["username"]: m["role"] for m in reply["members"]} == {
        "alice": "owner",
        "bob": "member",
    }
    assert all("email" not in m for m in reply["members"])
    assert reply["members"][0]["display_name"] == "Alice Example"
    assert await b1.expect("roomcreate.dispatch") == reply
    assert await b2.expect("roomcreate.dispatch") == reply
    room_id = reply["room"]["id"]
    assert await perms_of(users.alice, room_id) == {
        "view_room",
        "send_message",
        "manage_members",
        "modify_room",
        "delete_any_message",
    }
    assert await perms_of(users.bob, room_id) == {"view_room", "send_message"}
    # Both of bob's sockets joined the room group: a message reaches both.
    await a.ok("message.send", {"room_id": room_id, "content": "hello"})
    assert (await b1.expect("message.dispatch"))["message"]["content"] == "hello"
    assert (await b2.expect("message.dispatch"))["message"]["content"] == "hello"


async def test_direct_room_is_unique_per_pair(connect, users):
    a, b = await connect(users.alice), await connect(users.bob)
    first = await a.ok("room.create", {"type": "direct", "members": [users.bob.pk]})
    await b.expect("roomcreate.dispatch")
    again = await b.ok("room.create", {"type": "direct", "members": [users.alice.pk]})
    assert again["room"]["id"] == first["room"]["id"] and again["seq"] is None
    assert await a.nothing()
    assert await a.error("room.create", {"type": "direct", "members": [users.alice.pk]}) == 4003
    assert (
        await a.error("room.create", {"type": "direct", "members": [999999]}) == 4002
    )  # unknown ids look like users who blocked you
    bad = {"type": "direct", "members": [users.bob.pk], "name": "x"}
    assert await a.error("room.create", bad) == 4003


async def test_list_has_unread_counts_peers_and_pages(connect, users):
    a, b = await connect(users.alice), await connect(users.bob)
    rooms = [await group(a, users.bob, name=f"g{i}") for i in range(3)]
    direct = (await a.ok("room.create", {"type": "direct", "members": [users.bob.pk]}))["room"]
    for _ in range(4):
        await b.expect("roomcreate.dispatch")
    for content in ("one", "two"):
        await a.ok("message.send", {"room_id": rooms[0], "content": content})
        await b.expect("message.dispatch")
    listed = await b.ok("room.list", {}, "roomlist.dispatch")
    assert [r["id"] for r in listed["rooms"]] == [rooms[0], direct["id"], rooms[2], rooms[1]]
    by_id = {r["id"]: r for r in listed["rooms"]}
    assert by_id[rooms[0]]["unread_count"] == 2
    assert by_id[rooms[0]]["last_message"]["content"] == "two"
    assert by_id[rooms[0]]["member_count"] == 2
    assert by_id[direct["id"]]["peer"]["username"] == "alice"
    assert listed["has_more"] is False
    page1 = await b.ok("room.list", {"limit": 3})
    assert page1["has_more"] is True
    page2 = await b.ok("room.list", {"limit": 3, "before": page1["next_before"]})
    assert [r["id"] for r in page1["rooms"] + page2["rooms"]] == [r["id"] for r in listed["rooms"]]
    assert page2["has_more"] is False
    assert await b.error("room.list", {"before": "garbage"}) == 4003


async def test_info_lists_members_without_private_fields(connect, users):
    a = await connect(users.alice)
    room_id = await group(a, users.bob)
    info = await a.ok("room.info", {"room_id": room_id}, "roominfo.dispatch")
    assert info["room"]["name"] == "team"
    assert [m["username"] for m in info["members"]] == ["alice", "bob"]
    assert set(info["members"][0]) == {
        "id",
        "username",
        "display_name",
        "role",
        "joined_at",
        "last_read_seq",
    }


async def test_join_public_room_and_refusals(connect, users):
    a, c = await connect(users.alice), await connect(users.carol)
    public = await group(a, users.bob, is_public=True, member_limit=3)
    private = await group(a, users.bob)
    assert await c.error("room.join", {"room_id": private}) == 4004
    assert await c.error("room.join", {"room_id": 10**9}) == 4004
    joined = await c.ok("room.join", {"room_id": public}, "roomaddmembers.dispatch")
    assert joined["members"][0]["username"] == "carol" and joined["seq"] == 2
    assert (await a.expect("roomaddmembers.dispatch")) == joined
    assert await c.error("room.join", {"room_id": public}) == 4005
    d = await connect(users.dave)
    assert await d.error("room.join", {"room_id": public}) == 4005  # full
    await c.ok("message.send", {"room_id": public, "content": "hi"})
    assert (await a.expect("message.dispatch"))["message"]["author"]["username"] == "carol"


async def test_add_and_remove_members_move_group_membership(connect, users):
    a, c = await connect(users.alice), await connect(users.carol)
    room_id = await group(a, users.bob)
    added = await a.ok("room.add_members", {"room_id": room_id, "members": [users.carol.pk]})
    assert added["added_by"]["username"] == "alice"
    assert await c.expect("roomaddmembers.dispatch") == added
    assert await a.error("room.add_members", {"room_id": room_id, "members": [users.carol.pk]}) == (
        4005
    )
    await a.ok("message.send", {"room_id": room_id, "content": "welcome"})
    assert (await c.expect("message.dispatch"))["message"]["content"] == "welcome"

    removed = await a.ok("room.remove_members", {"room_id": room_id, "members": [users.carol.pk]})
    assert removed["members"][0]["username"] == "carol"
    exit_frame = await c.expect("roomexit.dispatch")
    assert exit_frame["room_id"] == room_id and exit_frame["removed_by"]["username"] == "alice"
    await a.ok("message.send", {"room_id": room_id, "content": "after"})
    assert await c.nothing()
    assert await c.error("room.info", {"room_id": room_id}) == 4004
    assert await perms_of(users.carol, room_id) == set()
    bad = {"room_id": room_id, "members": [users.alice.pk]}
    assert await a.error("room.remove_members", bad) == 4003


async def test_owner_leaving_hands_over_and_last_member_deletes(connect, users):
    a, b = await connect(users.alice), await connect(users.bob)
    room_id = await group(a, users.bob)
    await b.expect("roomcreate.dispatch")
    left = await a.ok("room.leave", {"room_id": room_id}, "roomexit.dispatch")
    assert left["room_id"] == room_id
    removed = await b.expect("roomremovemembers.dispatch")
    assert removed["new_owner"]["username"] == "bob"
    await b.ok("room.modify", {"room_id": room_id, "action": "update", "name": "mine"})
    gone = await b.ok("room.leave", {"room_id": room_id}, "roomdelete.dispatch")
    assert gone["room_id"] == room_id
    assert not await Room.objects.filter(pk=room_id).aexists()


async def test_modify_update_lock_admins_and_delete(connect, users):
    a, b = await connect(users.alice), await connect(users.bob)
    room_id = await group(a, users.bob)
    await b.expect("roomcreate.dispatch")
    upd = await a.ok("room.modify", {"room_id": room_id, "action": "update", "locked": True})
    assert upd["changes"] == {"locked": True} and upd["room"]["locked"] is True
    assert await b.expect("roomupdate.dispatch") == upd
    # Locked: members lose send_message, and bob's cached permission was dropped.
    assert await b.error("message.send", {"room_id": room_id, "content": "x"}) == 4002
    assert await b.error("room.modify", {"room_id": room_id, "action": "update", "name": "n"}) == (
        4002
    )
    promoted = await a.ok(
        "room.modify", {"room_id": room_id, "action": "add_admin", "members": [users.bob.pk]}
    )
    assert promoted["changes"]["admins_added"][0]["username"] == "bob"
    assert await b.expect("roomupdate.dispatch") == promoted
    await b.ok("message.send", {"room_id": room_id, "content": "admin now"})
    await a.expect("message.dispatch")
    assert await b.error("room.modify", {"room_id": room_id, "action": "delete"}) == 4002
    assert await a.error("room.modify", {"room_id": room_id, "action": "update"}) == 4003
    deleted = await a.ok("room.modify", {"room_id": room_id, "action": "delete"})
    assert deleted == {"room_id": room_id, "deleted_by": deleted["deleted_by"]}
    assert await b.expect("roomdelete.dispatch") == deleted
    assert await b.error("room.info", {"room_id": room_id}) == 4004
    assert not await Membership.objects.filter(room_id=room_id).aexists()


async def test_channel_subscribers_read_only(connect, users):
    a, b = await connect(users.alice), await connect(users.bob)
    data = {"type": "channel", "name": "news", "members": [users.bob.pk], "is_public": True}
    room_id = (await a.ok("room.create", data))["room"]["id"]
    await b.expect("roomcreate.dispatch")
    assert await b.error("message.send", {"room_id": room_id, "content": "x"}) == 4002
    await a.ok("message.send", {"room_id": room_id, "content": "news!"})
    assert (await b.expect("message.dispatch"))["message"]["content"] == "news!"
    assert await a.error("room.create", {**data, "locked": True}) == 4003
