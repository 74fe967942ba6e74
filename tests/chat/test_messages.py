"""Message events end to end: send, history, modify, react, read, acknowledged, typing."""

import asyncio

import pytest

from chatserver.chat.models import Message, RoomEvent

from .races import HeldBatches

pytestmark = pytest.mark.django_db(transaction=True)


async def setup_room(connect, users, *members):
    a = await connect(users.alice)
    others = [await connect(user) for user in members]
    data = {"type": "group", "name": "team", "members": [u.pk for u in members]}
    room_id = (await a.ok("room.create", data))["room"]["id"]
    for other in others:
        await other.expect("roomcreate.dispatch")
    return room_id, a, others


async def send(client, room_id, content, **extra):
    return await client.ok("message.send", {"room_id": room_id, "content": content, **extra})


async def test_send_assigns_gap_free_seq_and_resend_returns_original(connect, users):
    room_id, a, (b,) = await setup_room(connect, users, users.bob)
    first = await send(a, room_id, "one", client_msg_id="c-1")
    assert first["seq"] == 2 and first["message"]["client_msg_id"] == "c-1"
    assert await b.expect("message.dispatch") == first
    again = await send(a, room_id, "one", client_msg_id="c-1")
    assert again["duplicate"] is True and again["message"]["id"] == first["message"]["id"]
    assert await b.nothing()  # the resend is not broadcast again
    second = await send(b, room_id, "two")
    assert second["seq"] == 3
    await a.expect("message.dispatch")
    assert await Message.objects.filter(room_id=room_id).acount() == 2
    seqs = [
        s async for s in RoomEvent.objects.filter(room_id=room_id).values_list("seq", flat=True)
    ]
    assert sorted(seqs) == [1, 2, 3]
    other_room = (await a.ok("room.create", {"type": "group", "name": "x"}))["room"]["id"]
    code = await a.error(
        "message.send", {"room_id": other_room, "content": "z", "client_msg_id": "c-1"}
    )
    assert code == 4005


async def test_content_limits(connect, users, chat_options):
    chat_options(MAX_MESSAGE_LENGTH=10)
    room_id, a, _ = await setup_room(connect, users)
    assert await a.error("message.send", {"room_id": room_id, "content": "x" * 11}) == 4003
    assert await a.error("message.send", {"room_id": room_id, "content": "   "}) == 4003
    assert await a.error("message.send", {"room_id": room_id}) == 4003
    assert await a.error("message.send", {"room_id": room_id, "content": 5}) == 4003
    bad = {"room_id": room_id, "content": "x", "author_id": 1}
    assert await a.error("message.send", bad) == 4003  # only whitelisted fields
    await send(a, room_id, "x" * 10)


async def test_reply_and_forward_only_from_readable_rooms(connect, users):
    room_id, a, (b,) = await setup_room(connect, users, users.bob)
    original = (await send(a, room_id, "source"))["message"]
    await b.expect("message.dispatch")
    reply = await send(b, room_id, "re", parent_message_id=original["id"])
    assert reply["message"]["parent_message_id"] == original["id"]
    await a.expect("message.dispatch")
    # A room bob is not in: he can neither reply to nor forward from it.
    c = await connect(users.carol)
    secret_room = (await c.ok("room.create", {"type": "group", "name": "secret"}))["room"]["id"]
    secret = (await send(c, secret_room, "classified"))["message"]
    fwd = {"room_id": room_id, "forwarded_from_id": secret["id"]}
    assert await b.error("message.send", fwd) == 4004
    rep = {"room_id": room_id, "content": "x", "parent_message_id": secret["id"]}
    assert await b.error("message.send", rep) == 4004
    forwarded = await b.ok(
        "message.send", {"room_id": room_id, "forwarded_from_id": original["id"]}
    )
    assert forwarded["message"]["content"] == "source"
    assert forwarded["message"]["forwarded_from_id"] == original["id"]
    both = {**fwd, "forwarded_from_id": original["id"], "content": "x"}
    assert await b.error("message.send", both) == 4003


async def test_history_pages_by_seq(connect, users):
    room_id, a, _ = await setup_room(connect, users)
    for i in range(5):
        await send(a, room_id, f"m{i}")  # seqs 2..6
    latest = await a.ok("room.messages", {"room_id": room_id, "limit": 2}, "roommessages.dispatch")
    assert [m["content"] for m in latest["messages"]] == ["m3", "m4"]
    assert latest["has_more"] is True
    older = await a.ok("room.messages", {"room_id": room_id, "before": 5, "limit": 10})
    assert [m["seq"] for m in older["messages"]] == [2, 3, 4] and older["has_more"] is False
    newer = await a.ok("room.messages", {"room_id": room_id, "after": 3, "limit": 2})
    assert [m["seq"] for m in newer["messages"]] == [4, 5] and newer["has_more"] is True
    both = {"room_id": room_id, "after": 1, "before": 3}
    assert await a.error("room.messages", both) == 4003
    assert await a.error("room.messages", {"room_id": room_id, "limit": 101}) == 4003


async def test_edit_and_soft_delete(connect, users):
    room_id, a, (b,) = await setup_room(connect, users, users.bob)
    msg = (await send(a, room_id, "draft"))["message"]
    await b.expect("message.dispatch")
    edit = {"message_id": msg["id"], "action": "update", "content": "final"}
    assert await b.error("message.modify", edit) == 4002  # not the author
    edited = await a.ok("message.modify", edit, "messagemodification.dispatch")
    assert edited["action"] == "update" and edited["message"]["is_edited"] is True
    assert edited["message"]["content"] == "final" and edited["seq"] == 3
    assert await b.expect("messagemodification.dispatch") == edited
    delete = {"message_id": msg["id"], "action": "delete"}
    assert await b.error("message.modify", delete) == 4002
    deleted = await a.ok("message.modify", delete)
    assert deleted["message"]["is_deleted"] is True and deleted["message"]["content"] is None
    await b.expect("messagemodification.dispatch")
    assert await a.error("message.modify", delete) == 4004
    history = await b.ok("room.messages", {"room_id": room_id})
    assert history["messages"][0]["content"] is None
    # The content stays out of the replayed log too.
    resumed = await b.ok("session.resume", {"rooms": {str(room_id): 0}})
    assert "final" not in str(resumed) and "draft" not in str(resumed)


async def test_admin_deletes_any_message_hard_when_configured(connect, users, chat_options):
    chat_options(MESSAGE_SOFT_DELETE=False)
    room_id, a, (b,) = await setup_room(connect, users, users.bob)
    msg = (await send(b, room_id, "spam"))["message"]
    await a.expect("message.dispatch")
    gone = await a.ok("message.modify", {"message_id": msg["id"], "action": "delete"})
    assert gone["message"] == {
        "id": msg["id"],
        "room_id": room_id,
        "is_deleted": True,
        "content": None,
    }
    await b.expect("messagemodification.dispatch")
    assert not await Message.objects.filter(pk=msg["id"]).aexists()
    resumed = await b.ok("session.resume", {"rooms": {str(room_id): 0}})
    assert "spam" not in str(resumed)


async def test_reactions_are_idempotent(connect, users):
    room_id, a, (b,) = await setup_room(connect, users, users.bob)
    msg = (await send(a, room_id, "hi"))["message"]
    await b.expect("message.dispatch")
    add = {"message_id": msg["id"], "action": "add", "emoji": "👍"}
    first = await b.ok("message.react", add, "reaction.dispatch")
    assert first["changed"] is True and first["seq"] == 3 and first["user"]["username"] == "bob"
    assert await a.expect("reaction.dispatch") == first
    again = await b.ok("message.react", add)
    assert again["changed"] is False and again["seq"] is None
    assert await a.nothing()
    history = await a.ok("room.messages", {"room_id": room_id})
    assert history["messages"][0]["reactions"] == [{"emoji": "👍", "user_ids": [users.bob.pk]}]
    removed = await b.ok("message.react", {**add, "action": "remove"})
    assert removed["changed"] is True and removed["seq"] == 4
    await a.expect("reaction.dispatch")
    assert (await b.ok("message.react", {**add, "action": "remove"}))["changed"] is False
    assert await b.error("message.react", {**add, "message_id": 10**9}) == 4004


async def test_read_receipts_move_forward_only_and_reset_unread(connect, users):
    room_id, a, (b,) = await setup_room(connect, users, users.bob)
    for text in ("1", "2"):
        await send(a, room_id, text)
        await b.expect("message.dispatch")
    receipt = await b.ok("message.read", {"rooms": {str(room_id): 3}}, "readreceipt.dispatch")
    assert receipt["receipts"] == [{"room_id": room_id, "last_read_seq": 3}]
    broadcast = await a.expect("readreceipt.dispatch")
    assert broadcast["receipts"] == [{"room_id": room_id, "last_read_seq": 3}]
    older = await b.ok("message.read", {"rooms": {str(room_id): 1}})
    assert older["receipts"][0]["last_read_seq"] == 3  # never moves back
    assert await a.nothing()
    listed = await b.ok("room.list")
    assert listed["rooms"][0]["unread_count"] == 0
    assert await b.error("message.read", {"rooms": {"999999": 1}}) == 4004


async def test_delivery_acks_reach_only_the_authors(connect, users):
    room_id, a, (b, c) = await setup_room(connect, users, users.bob, users.carol)
    await send(a, room_id, "from alice")
    await b.expect("message.dispatch")
    await c.expect("message.dispatch")
    await b.send("message.acknowledged", {"rooms": {str(room_id): 2}})
    delivered = await a.expect("messagedelivered.dispatch")
    assert delivered == {
        "user": delivered["user"],
        "receipts": [{"room_id": room_id, "last_delivered_seq": 2}],
    }
    assert delivered["user"]["username"] == "bob"
    # Repeating the ack changes nothing and tells nobody; carol (not the author) never hears.
    await b.send("message.acknowledged", {"rooms": {str(room_id): 2}})
    await send(b, room_id, "marker")
    assert (await a.recv())["eventType"] == "message.dispatch"
    assert (await c.recv())["eventType"] == "message.dispatch"


async def test_typing_carries_room_and_is_not_echoed(connect, users):
    room_id, a, (b,) = await setup_room(connect, users, users.bob)
    a2 = await connect(users.alice)
    await a.send("message.typing", {"room_id": room_id, "state": "start"})
    typing = await b.expect("messagetyping.dispatch")
    assert typing == {"room_id": room_id, "user": typing["user"], "state": "start"}
    assert typing["user"]["username"] == "alice"
    # A later broadcast arrives next on alice's own sockets: the typing frame never came.
    await send(b, room_id, "marker")
    assert (await a.recv())["eventType"] == "message.dispatch"
    assert (await a2.recv())["eventType"] == "message.dispatch"


@pytest.fixture
def gated_store(monkeypatch):
    """Hold the first message batch until the test opens the gate; records batch sizes.

    The real batch function still stores every message: this only decides when it starts.
    """
    from chatserver.chat.handlers.messages import store_messages

    held = HeldBatches(monkeypatch, store_messages)

    async def queued(count):
        """Wait until the first batch is held and ``count`` more sends queue behind it."""
        await held.until(lambda: held.sizes and held.waiting() == count, "sends did not queue")

    return held.gate, held.sizes, queued


async def test_sends_are_pipelined_and_answered_in_frame_order(connect, users, gated_store):
    gate, sizes, queued = gated_store
    room_id, a, (b,) = await setup_room(connect, users, users.bob)
    for i in range(5):
        await a.send("message.send", {"room_id": room_id, "content": f"m{i}"}, f"s{i}")
    await a.send("message.send", {"room_id": room_id}, "bad")  # refused when stored
    await a.send("message.send", {"room_id": 999999, "content": "x"}, "nope")  # refused at once
    await a.send("room.messages", {"room_id": room_id}, "history")  # waits for the sends
    await queued(5)  # read while the first send was being stored
    gate.set()
    answers = [await a.recv() for _ in range(8)]
    expected = [f"s{i}" for i in range(5)] + ["bad", "nope", "history"]
    assert [f["request_id"] for f in answers] == expected
    assert [f["data"]["seq"] for f in answers[:5]] == [2, 3, 4, 5, 6]
    assert [f["error"]["code"] for f in answers[5:7]] == [4003, 4004]
    history = [m["content"] for m in answers[7]["data"]["messages"]]
    assert history == [f"m{i}" for i in range(5)]
    assert sizes == [1, 5]
    dispatched = [(await b.expect("message.dispatch"))["seq"] for _ in range(5)]
    assert dispatched == [2, 3, 4, 5, 6]


async def test_messages_of_a_socket_that_closed_still_reach_the_room(connect, users, gated_store):
    gate, _, queued = gated_store
    room_id, a, (b,) = await setup_room(connect, users, users.bob)
    for i in range(3):
        await a.send("message.send", {"room_id": room_id, "content": f"bye{i}"})
    await queued(2)
    await a.communicator.send_input({"type": "websocket.disconnect", "code": 1000})
    gate.set()
    assert [(await b.expect("message.dispatch"))["message"]["content"] for _ in range(3)] == [
        "bye0",
        "bye1",
        "bye2",
    ]
    await a.communicator.wait(2)  # the consumer ended after its answers went out
    assert await Message.objects.filter(room_id=room_id).acount() == 3


def queued_sends():
    from chatserver.chat.handlers.messages import store_messages

    return store_messages._loops[asyncio.get_running_loop()].items


async def test_a_flood_of_sends_waits_for_answers_past_the_pipeline_limit(
    connect, users, gated_store, chat_options
):
    chat_options(MAX_PIPELINED_SENDS=2)
    gate, sizes, queued = gated_store
    room_id, a, (b,) = await setup_room(connect, users, users.bob)
    for i in range(5):
        await a.send("message.send", {"room_id": room_id, "content": f"m{i}"}, f"s{i}")
    await queued(1)  # the first batch is held, one send waits behind it ...
    await asyncio.sleep(0.1)
    assert sizes == [1]  # ... and the consumer reads no further frame meanwhile
    assert len(queued_sends()) == 1
    gate.set()
    answers = [await a.recv() for _ in range(5)]
    assert [f["request_id"] for f in answers] == [f"s{i}" for i in range(5)]
    assert [f["data"]["seq"] for f in answers] == [2, 3, 4, 5, 6]


@pytest.mark.parametrize("good", ["👍", "❤️", "👍🏽", "👨‍👩‍👧", "🇫🇷", "🎉"])
async def test_a_reaction_is_one_emoji(connect, users, good):
    room_id, a, _ = await setup_room(connect, users)
    msg = (await send(a, room_id, "hi"))["message"]
    added = await a.ok("message.react", {"message_id": msg["id"], "action": "add", "emoji": good})
    assert added["emoji"] == good and added["changed"] is True


@pytest.mark.parametrize("bad", ["+1", "tada", ":tada:", "a", "👍👍", "👍 ", "", "x" * 40, 5])
async def test_anything_but_one_emoji_is_refused(connect, users, bad):
    room_id, a, _ = await setup_room(connect, users)
    msg = (await send(a, room_id, "hi"))["message"]
    react = {"message_id": msg["id"], "action": "add", "emoji": bad}
    assert await a.error("message.react", react) == 4003


async def test_distinct_reactions_per_message_are_capped(connect, users, chat_options):
    chat_options(MAX_REACTIONS_PER_MESSAGE=3)
    room_id, a, (b,) = await setup_room(connect, users, users.bob)
    msg = (await send(a, room_id, "hi"))["message"]
    await b.expect("message.dispatch")

    def react(emoji, action="add"):
        return {"message_id": msg["id"], "action": action, "emoji": emoji}

    async def ok(client, watcher, data):
        await client.ok("message.react", data)
        await watcher.expect("reaction.dispatch")

    for emoji in ["👍", "🎉", "❤️"]:
        await ok(a, b, react(emoji))
    assert await a.error("message.react", react("😂")) == 4005
    assert await b.error("message.react", react("😂")) == 4005
    await ok(b, a, react("👍"))  # one already there: more people may add it
    await ok(a, b, react("🎉", "remove"))
    await ok(b, a, react("😂"))  # room again after a distinct one went
    history = await a.ok("room.messages", {"room_id": room_id})
    assert [r["emoji"] for r in history["messages"][0]["reactions"]] == ["👍", "❤️", "😂"]


async def test_messages_in_rooms_one_cannot_see_look_like_missing_ones(connect, users):
    room_id, a, _ = await setup_room(connect, users)
    hidden = (await send(a, room_id, "secret"))["message"]["id"]
    carol = await connect(users.carol)
    for event, data in [
        ("message.modify", {"action": "update", "content": "mine now"}),
        ("message.modify", {"action": "delete"}),
        ("message.react", {"action": "add", "emoji": "👍"}),
    ]:
        frames = []
        for message_id in (hidden, 10**9):
            frame = await carol.request(event, {"message_id": message_id, **data})
            frames.append(frame["error"])
        assert (
            frames[0]
            == frames[1]
            == {
                "code": 4004,
                "detail": "Message not found.",
                "event_type": event,
            }
        )


async def test_in_a_locked_group_members_delete_but_cannot_edit(connect, users):
    room_id, a, (b,) = await setup_room(connect, users, users.bob)
    old = (await send(b, room_id, "before the lock"))["message"]
    other = (await send(b, room_id, "another"))["message"]
    await a.expect("message.dispatch")
    await a.expect("message.dispatch")
    await a.ok("room.modify", {"room_id": room_id, "action": "update", "locked": True})
    await b.expect("roomupdate.dispatch")
    edit = {"message_id": old["id"], "action": "update", "content": "new words"}
    assert await b.error("message.modify", edit) == 4002
    assert await a.nothing()  # nothing was broadcast
    stored = await Message.objects.aget(pk=old["id"])
    assert stored.content == "before the lock" and not stored.is_edited
    deleted = await b.ok("message.modify", {"message_id": other["id"], "action": "delete"})
    assert deleted["message"]["is_deleted"] is True
