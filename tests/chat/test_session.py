"""Heartbeat, resume, notifications, and multi-device fan-out over the real Redis layer."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from chatserver.chat import sessions
from chatserver.chat.models import Session

pytestmark = pytest.mark.django_db(transaction=True)


async def test_heartbeat_touches_the_session(connect, users):
    a = await connect(users.alice)
    reply = await a.ok("session.heartbeat", {}, "session.heartbeat")
    assert reply["inactivity_threshold"] == 60 and "server_time" in reply
    assert await Session.objects.filter(user=users.alice, closed_at__isnull=True).acount() == 1


async def test_heartbeat_reopens_a_session_the_sweeper_closed(connect, users):
    a = await connect(users.alice)
    channel = (await Session.objects.aget(user=users.alice)).channel_name
    await sessions.close_session(channel, 4408)
    await a.ok("session.heartbeat")
    assert await Session.objects.filter(channel_name=channel, closed_at__isnull=True).aexists()


async def test_concurrent_heartbeats_are_recorded_together(connect, users):
    """Heartbeats arriving while one UPDATE runs share the next: each socket still learns
    whether its own session was open."""
    sockets = [await connect(users.alice) for _ in range(6)]
    channels = [s.channel_name async for s in Session.objects.order_by("pk")]
    await sessions.close_session(channels[0], 4408)  # the sweeper took this one
    before = await Session.objects.filter(closed_at__isnull=True).acount()
    results = await asyncio.gather(*(sessions.touch_session(c) for c in [*channels, "unknown"]))
    assert results == [False, *[True] * 5, False]
    replies = await asyncio.gather(*(s.ok("session.heartbeat") for s in sockets))
    assert all("server_time" in reply for reply in replies)
    # The closed one was reopened by its own heartbeat; nothing else changed.
    assert await Session.objects.filter(closed_at__isnull=True).acount() == before + 1


def test_closes_in_flight_share_one_update_per_code(users):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    names = [f"chan-{n}" for n in range(6)]
    Session.objects.bulk_create(
        Session(user=users.alice, channel_name=name, last_heartbeat=timezone.now())
        for name in names
    )
    closes = [(name, 1000 if n % 2 else 1001) for n, name in enumerate(names)]
    with CaptureQueriesContext(connection) as queries:
        sessions.close_sessions_sync(closes)
    assert len(queries) == 2
    codes = dict(Session.objects.values_list("channel_name", "close_code"))
    assert codes == dict(closes)
    assert not Session.objects.filter(closed_at__isnull=True).exists()


def test_one_update_records_a_batch_of_open_sessions(users):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    names = [f"chan-{n}" for n in range(50)]
    Session.objects.bulk_create(
        Session(user=users.alice, channel_name=name, last_heartbeat=timezone.now())
        for name in names
    )
    with CaptureQueriesContext(connection) as queries:
        assert sessions.touch_sessions_sync(names) == [True] * 50
    assert len(queries) == 1
    Session.objects.filter(channel_name="chan-3").update(closed_at=timezone.now())
    assert sessions.touch_sessions_sync(["chan-3", "chan-4", "nope"]) == [False, True, False]


async def test_resume_replays_in_order_bounded_and_lists_missing(connect, users, chat_options):
    chat_options(RESUME_MAX_EVENTS=3)
    a = await connect(users.alice)
    room_id = (await a.ok("room.create", {"type": "group", "name": "g"}))["room"]["id"]
    for i in range(4):
        await a.ok("message.send", {"room_id": room_id, "content": f"m{i}"})  # seqs 2..5
    resumed = await a.ok("session.resume", {"rooms": {str(room_id): 0, "999999": 0}})
    state = resumed["rooms"][str(room_id)]
    assert [e["data"]["seq"] for e in state["events"]] == [1, 2, 3]
    assert state["events"][0]["eventType"] == "roomcreate.dispatch"
    assert state["events"][1]["data"]["message"]["content"] == "m0"
    assert state["limited"] is True and state["next_after"] == 3 and state["last_seq"] == 5
    assert resumed["missing"] == [999999]
    rest = await a.ok("session.resume", {"rooms": {str(room_id): state["next_after"]}})
    rest_state = rest["rooms"][str(room_id)]
    assert [e["data"]["seq"] for e in rest_state["events"]] == [4, 5]
    assert rest_state["limited"] is False
    assert await a.error("session.resume", {"rooms": {}}) == 4003
    assert await a.error("session.resume", {"rooms": {"x": 1}}) == 4003


async def test_notifications_on_connect_list_unread_rooms(connect, users, chat_options):
    a = await connect(users.alice)
    data = {"type": "group", "name": "g", "members": [users.bob.pk]}
    room_id = (await a.ok("room.create", data))["room"]["id"]
    await a.ok("message.send", {"room_id": room_id, "content": "while you were away"})
    b = await connect(users.bob, notifications=False)
    notes = await b.expect("chat.notifications")
    assert [r["id"] for r in notes["rooms"]] == [room_id]
    assert notes["rooms"][0]["unread_count"] == 1 and notes["has_more"] is False
    assert notes["rooms"][0]["last_message"]["content"] == "while you were away"
    chat_options(ENABLE_NOTIFICATION=False)
    quiet = await connect(users.bob, notifications=False)
    await quiet.ok("session.heartbeat")  # the first frame is the reply: no notifications


@database_sync_to_async
def open_channels(user):
    return list(
        Session.objects.filter(user=user, closed_at__isnull=True).values_list(
            "channel_name", flat=True
        )
    )


async def test_fan_out_to_every_device_over_redis(redis_layer, connect, users):
    a = await connect(users.alice)
    phone, laptop = await connect(users.bob), await connect(users.bob)
    data = {"type": "group", "name": "g", "members": [users.bob.pk]}
    room_id = (await a.ok("room.create", data))["room"]["id"]
    for device in (phone, laptop):
        await device.expect("roomcreate.dispatch")
    sent = await a.ok("message.send", {"room_id": room_id, "content": "to all devices"})
    assert await phone.expect("message.dispatch") == sent
    assert await laptop.expect("message.dispatch") == sent
    # A reply goes to the requesting connection only.
    await phone.ok("room.info", {"room_id": room_id})
    assert await laptop.nothing()
    assert await a.nothing()
    assert "redis" in type(redis_layer).__module__


async def test_resume_after_reconnect_loses_nothing_over_redis(redis_layer, connect, users):
    a, b = await connect(users.alice), await connect(users.bob)
    data = {"type": "group", "name": "g", "members": [users.bob.pk]}
    room_id = (await a.ok("room.create", data))["room"]["id"]
    await b.expect("roomcreate.dispatch")
    first = await a.ok("message.send", {"room_id": room_id, "content": "seen"})
    assert (await b.expect("message.dispatch"))["seq"] == first["seq"]
    await b.close()
    # While bob is away the room moves on: messages, an edit, a reaction.
    missed = await a.ok("message.send", {"room_id": room_id, "content": "missed"})
    edit = {"message_id": first["message"]["id"], "action": "update", "content": "seen!"}
    await a.ok("message.modify", edit)
    react = {"message_id": missed["message"]["id"], "action": "add", "emoji": "🎉"}
    await a.ok("message.react", react)
    b = await connect(users.bob)
    resumed = await b.ok("session.resume", {"rooms": {str(room_id): first["seq"]}})
    events = resumed["rooms"][str(room_id)]["events"]
    assert [e["eventType"] for e in events] == [
        "message.dispatch",
        "messagemodification.dispatch",
        "reaction.dispatch",
    ]
    assert [e["data"]["seq"] for e in events] == [3, 4, 5]
    assert events[0]["data"]["message"]["content"] == "missed"
    assert events[1]["data"]["message"]["content"] == "seen!"
    # The reconnected socket is back in the room group (joined from the database).
    live = await a.ok("message.send", {"room_id": room_id, "content": "live"})
    assert (await b.expect("message.dispatch"))["seq"] == live["seq"] == 6


async def test_operator_disconnect_and_heartbeat_expiry_close_the_socket(
    redis_layer, connect, users
):
    a = await connect(users.alice)
    assert await sessions.disconnect_user(users.alice.pk, 4400) == 1
    assert await a.communicator.receive_output() == {"type": "websocket.close", "code": 4400}
    b = await connect(users.bob)
    assert await sessions.expire_silent_sessions(0) >= 1
    assert await b.communicator.receive_output() == {"type": "websocket.close", "code": 4408}
    assert await open_channels(users.bob) == []


async def test_a_close_naming_one_socket_leaves_the_users_others_open(redis_layer, connect, users):
    """Sockets have no layer channel of their own: a close for one of them travels on the
    user's group with its channel name, and the user's other sockets stay (the admin's "end
    sessions" and the sweeper close sockets one by one)."""
    from asgiref.sync import sync_to_async

    from chatserver.chat.delivery import sync_broadcast

    first = await connect(users.alice)
    second = await connect(users.alice)
    channels = [s.channel_name async for s in Session.objects.order_by("pk")]
    await sync_to_async(sync_broadcast.close_sockets)(users.alice.pk, channels[:1], 4400)
    assert await first.communicator.receive_output(5) == {"type": "websocket.close", "code": 4400}
    assert (await second.ok("session.heartbeat"))["inactivity_threshold"] == 60
    assert channels[0].startswith("socket.") and len(set(channels)) == 2


async def test_a_replayed_message_reads_as_the_history_shows_it(connect, users):
    """Replay builds messages from rows (eventlog.StoredMessage), the history from model
    instances: every field of every kind of message must read the same."""
    a = await connect(users.alice)
    data = {"type": "group", "name": "g", "members": [users.bob.pk]}
    room_id = (await a.ok("room.create", data))["room"]["id"]
    first = await a.ok(
        "message.send", {"room_id": room_id, "content": "draft", "client_msg_id": "c1"}
    )
    first_id = first["message"]["id"]
    reply = {"room_id": room_id, "content": "re", "parent_message_id": first_id}
    reply_id = (await a.ok("message.send", reply))["message"]["id"]
    gone = (await a.ok("message.send", {"room_id": room_id, "content": "oops"}))["message"]["id"]
    await a.ok("message.modify", {"message_id": first_id, "action": "update", "content": "final"})
    await a.ok("message.modify", {"message_id": gone, "action": "delete"})
    for emoji in ("👍", "🎉"):
        await a.ok("message.react", {"message_id": first_id, "action": "add", "emoji": emoji})
    b = await connect(users.bob)

    resumed = await b.ok("session.resume", {"rooms": {str(room_id): 0}})
    replayed = {
        event["data"]["message"]["id"]: event["data"]["message"]
        for event in resumed["rooms"][str(room_id)]["events"]
        if event["eventType"] == "message.dispatch"
    }
    shown = {m["id"]: m for m in (await b.ok("room.messages", {"room_id": room_id}))["messages"]}
    assert set(replayed) == {first_id, reply_id, gone}
    assert replayed == {message_id: shown[message_id] for message_id in replayed}
    assert replayed[first_id]["is_edited"] and len(replayed[first_id]["reactions"]) == 2
    assert replayed[reply_id]["parent_message_id"] == first_id
    assert replayed[gone]["is_deleted"] and replayed[gone]["content"] is None
