"""Moderation: the Django admin and room.mute go through the room services, take a seq and reach
every connected member (the admin's broadcasts through the channel layer, from sync code)."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async

from chatserver.chat.models import Membership, Message, Mute, Room, RoomEvent
from chatserver.chat.protocol import CLOSE_SERVER_REQUEST

from .conftest import team_room

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def room(users):
    """alice owns "team", bob is an admin, carol a member; alice said hello (seq 3)."""
    return team_room(users)


async def post(client, path, data):
    response = await sync_to_async(client.post)(path, data)
    assert response.status_code == 302, response.content[:2000]
    return response


async def last_seq(room_id):
    return (await Room.objects.aget(pk=room_id)).last_seq


# -- the Django admin ------------------------------------------------------------------------


def room_form(room_id, memberships, delete=None, **fields):
    """The admin's room change form with its membership inline, one user's row marked for
    deletion when ``delete`` names them."""
    data = {
        "description": "",
        "member_limit": 100,
        **fields,
        "memberships-TOTAL_FORMS": len(memberships),
        "memberships-INITIAL_FORMS": len(memberships),
        "memberships-MIN_NUM_FORMS": 0,
        "memberships-MAX_NUM_FORMS": 1000,
    }
    for i, m in enumerate(memberships):
        data[f"memberships-{i}-id"] = m["id"]
        data[f"memberships-{i}-room"] = room_id
        data[f"memberships-{i}-user"] = m["user_id"]
        if m["user_id"] == delete:
            data[f"memberships-{i}-DELETE"] = "on"
    return data


async def test_admin_delete_action_is_a_room_event_every_member_hears(
    admin_client, connect, users, room
):
    room_id, message_id = room
    bob = await connect(users.bob)
    before = await last_seq(room_id)
    await post(
        admin_client,
        "/admin/chat/message/",
        {"action": "delete_messages", "_selected_action": [message_id]},
    )
    event = await bob.expect("messagemodification.dispatch")
    assert event["seq"] == before + 1 == await last_seq(room_id)
    assert event["action"] == "delete" and event["message"]["is_deleted"] is True
    assert event["message"]["content"] is None
    assert await RoomEvent.objects.filter(room_id=room_id, seq=event["seq"]).aexists()
    # A client that was away catches up on it like on any other event.
    resumed = await bob.ok("session.resume", {"rooms": {str(room_id): before}})
    (replayed,) = resumed["rooms"][str(room_id)]["events"]
    assert replayed["data"]["seq"] == event["seq"]


async def test_admin_delete_view_leaves_a_tombstone_and_tells_the_room(
    admin_client, connect, users, room
):
    room_id, message_id = room
    carol = await connect(users.carol)
    await post(admin_client, f"/admin/chat/message/{message_id}/delete/", {"post": "yes"})
    event = await carol.expect("messagemodification.dispatch")
    assert event["seq"] == await last_seq(room_id)
    message = await Message.objects.aget(pk=message_id)
    assert message.is_deleted and event["message"]["id"] == message_id


async def test_admin_edit_takes_a_seq_and_is_broadcast(admin_client, connect, users, room):
    room_id, message_id = room
    bob = await connect(users.bob)
    before = await last_seq(room_id)
    await post(admin_client, f"/admin/chat/message/{message_id}/change/", {"content": "redacted"})
    event = await bob.expect("messagemodification.dispatch")
    assert event["seq"] == before + 1
    assert event["message"]["content"] == "redacted" and event["message"]["is_edited"] is True


async def test_admin_removing_a_member_tells_them_and_the_room(admin_client, connect, users, room):
    room_id, _ = room
    bob = await connect(users.bob)
    carol = await connect(users.carol)
    memberships = [
        m async for m in Membership.objects.filter(room_id=room_id).order_by("pk").values()
    ]
    data = room_form(room_id, memberships, delete=users.carol.pk, name="team")
    before = await last_seq(room_id)
    await post(admin_client, f"/admin/chat/room/{room_id}/change/", data)
    removed = await bob.expect("roomremovemembers.dispatch")
    assert removed["seq"] == before + 1
    assert [u["id"] for u in removed["members"]] == [users.carol.pk]
    exit_frame = await carol.expect("roomexit.dispatch")
    assert exit_frame["seq"] == removed["seq"]
    # carol's socket left the room: she hears nothing more, and cannot send there.
    await bob.ok("message.send", {"room_id": room_id, "content": "after"})
    assert await carol.nothing(0.2)
    assert await carol.error("message.send", {"room_id": room_id, "content": "x"}) == 4004
    assert not await Membership.objects.filter(room_id=room_id, user=users.carol).aexists()


async def test_admin_room_edit_is_a_room_update_with_a_seq(admin_client, connect, users, room):
    room_id, _ = room
    carol = await connect(users.carol)
    before = await last_seq(room_id)
    memberships = [m async for m in Membership.objects.filter(room_id=room_id).values()]
    data = room_form(room_id, memberships, name="renamed", locked="on")
    await post(admin_client, f"/admin/chat/room/{room_id}/change/", data)
    event = await carol.expect("roomupdate.dispatch")
    assert event["seq"] == before + 1
    assert event["changes"] == {"name": "renamed", "locked": True}
    # The lock bites at once: carol's cached permissions were dropped by the broadcast.
    assert await carol.error("message.send", {"room_id": room_id, "content": "x"}) == 4002


async def test_admin_ends_a_users_sessions(admin_client, connect, users, room):
    alice = await connect(users.alice)
    other_device = await connect(users.alice)
    bob = await connect(users.bob)
    await post(
        admin_client,
        "/admin/auth/user/",
        {"action": "end_all_sessions", "_selected_action": [users.alice.pk]},
    )
    for socket in (alice, other_device):
        output = await socket.communicator.receive_output(timeout=3)
        assert output == {"type": "websocket.close", "code": CLOSE_SERVER_REQUEST}
    await bob.ok("session.heartbeat")  # nobody else


async def test_admin_ends_one_session(admin_client, connect, users, room):
    alice = await connect(users.alice)
    other_device = await connect(users.alice)
    (first,) = [
        s
        async for s in users.alice.chat_sessions.filter(closed_at__isnull=True)
        .order_by("connected_at")
        .values_list("pk", flat=True)[:1]
    ]
    await post(
        admin_client,
        "/admin/chat/session/",
        {"action": "end_sessions", "_selected_action": [first]},
    )
    output = await alice.communicator.receive_output(timeout=3)
    assert output == {"type": "websocket.close", "code": CLOSE_SERVER_REQUEST}
    await other_device.ok("session.heartbeat")


# -- room.mute -------------------------------------------------------------------------------


async def test_a_muted_member_cannot_send_or_edit_until_unmuted(connect, users, room):
    room_id, _ = room
    alice = await connect(users.alice)
    carol = await connect(users.carol)
    mine = await carol.ok("message.send", {"room_id": room_id, "content": "mine"})
    await alice.expect("message.dispatch")
    before = await last_seq(room_id)

    muted = await alice.ok(
        "room.mute", {"room_id": room_id, "user_id": users.carol.pk, "seconds": 600}
    )
    assert muted["seq"] == before + 1 and muted["user"]["id"] == users.carol.pk
    assert await carol.expect("roommute.dispatch") == muted
    assert await carol.error("message.send", {"room_id": room_id, "content": "x"}) == 4002
    edit = {"message_id": mine["message"]["id"], "action": "update", "content": "y"}
    assert await carol.error("message.modify", edit) == 4002
    assert await carol.error("message.typing", {"room_id": room_id}) == 4002
    # Reading, reacting and deleting one's own message still work.
    await carol.ok("room.messages", {"room_id": room_id})
    react = {"message_id": mine["message"]["id"], "action": "add", "emoji": "👍"}
    await carol.ok("message.react", react)
    await alice.expect("reaction.dispatch")

    # Stored: a new socket is muted too.
    again = await connect(users.carol)
    assert await again.error("message.send", {"room_id": room_id, "content": "x"}) == 4002
    assert await Mute.objects.filter(room_id=room_id, user=users.carol).aexists()

    unmuted = await alice.ok("room.unmute", {"room_id": room_id, "user_id": users.carol.pk})
    assert unmuted["muted_until"] is None and unmuted["seq"] == muted["seq"] + 2
    assert await carol.expect("roommute.dispatch") == unmuted
    await carol.ok("message.send", {"room_id": room_id, "content": "back"})
    await alice.expect("message.dispatch")
    # Unmuting again changes nothing: no seq, no broadcast.
    assert (await alice.ok("room.unmute", {"room_id": room_id, "user_id": users.carol.pk}))[
        "seq"
    ] is None


async def test_a_mute_runs_out_by_itself(connect, users, room):
    room_id, _ = room
    alice = await connect(users.alice)
    carol = await connect(users.carol)
    until = datetime.now(UTC) + timedelta(seconds=1.5)
    data = {"room_id": room_id, "user_id": users.carol.pk, "until": until.isoformat()}
    await alice.ok("room.mute", data)
    await carol.expect("roommute.dispatch")
    assert await carol.error("message.send", {"room_id": room_id, "content": "x"}) == 4002
    remaining = (until - datetime.now(UTC)).total_seconds()
    await asyncio.sleep(max(0.0, remaining) + 0.2)  # the condition is the clock passing `until`
    # The connection's cached access knew when the mute ends, and reads it again.
    await carol.ok("message.send", {"room_id": room_id, "content": "free again"})


async def test_mute_rules(connect, users, room):
    room_id, _ = room
    alice = await connect(users.alice)
    bob = await connect(users.bob)
    carol = await connect(users.carol)

    def mute(user, **extra):
        return {"room_id": room_id, "user_id": user.pk, **(extra or {"seconds": 60})}

    assert await bob.error("room.mute", mute(users.alice)) == 4002  # nobody mutes the owner
    assert await carol.error("room.mute", mute(users.bob)) == 4002  # members mute nobody
    assert await bob.error("room.mute", mute(users.bob)) == 4003  # not oneself
    assert await bob.error("room.mute", mute(users.dave)) == 4003  # not a member
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert await bob.error("room.mute", mute(users.carol, until=past)) == 4003
    assert await bob.error("room.mute", mute(users.carol, until="tomorrow")) == 4003
    assert await bob.error("room.mute", mute(users.carol, until="2030-01-01T00:00:00")) == 4003
    both = mute(users.carol, seconds=5, until="2030-01-01T00:00:00+00:00")
    assert await bob.error("room.mute", both) == 4003
    assert await bob.error("room.mute", {"room_id": room_id, "user_id": users.carol.pk}) == 4003
    assert await bob.error("room.mute", mute(users.carol, seconds=0)) == 4003
    # Admins are muted by the owner only.
    await alice.ok("room.mute", mute(users.bob))
    await bob.expect("roommute.dispatch")
    assert await bob.error("message.send", {"room_id": room_id, "content": "x"}) == 4002


async def test_admin_broadcasts_travel_through_redis(
    admin_client, connect, users, room, pubsub_layer
):
    """The admin's frames go out as layer group messages: every daemon subscribed to the room's
    group (this one through Redis pub/sub here) hands them to its members."""
    room_id, message_id = room
    bob = await connect(users.bob)
    await post(
        admin_client,
        "/admin/chat/message/",
        {"action": "delete_messages", "_selected_action": [message_id]},
    )
    event = await bob.expect("messagemodification.dispatch", timeout=5)
    assert event["seq"] == await last_seq(room_id)


def test_admin_pages_render(admin_client, room, users):
    """Every chat model's list and change page, and the user list with its new action."""
    room_id, message_id = room
    from chatserver.chat.models import Session

    session = Session.objects.create(
        user=users.alice, channel_name="x.1", last_heartbeat="2030-01-01T00:00:00Z"
    )
    pages = [
        "/admin/chat/room/",
        f"/admin/chat/room/{room_id}/change/",
        "/admin/chat/message/",
        f"/admin/chat/message/{message_id}/change/",
        "/admin/chat/session/",
        f"/admin/chat/session/{session.pk}/change/",
        "/admin/chat/mute/",
        "/admin/chat/roomevent/",
        "/admin/auth/user/",
    ]
    for page in pages:
        response = admin_client.get(page)
        assert response.status_code == 200, page
    assert b"end_all_sessions" in admin_client.get("/admin/auth/user/").content
    assert admin_client.get("/admin/chat/room/add/").status_code == 403
    assert admin_client.get("/admin/chat/message/add/").status_code == 403
