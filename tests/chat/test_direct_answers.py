"""How a connection answers: pipelined answers in order, and frames through a direct sender."""

import asyncio
import json

import pytest
from channels.testing import WebsocketCommunicator

from chatserver.asgi import application
from chatserver.chat.auth.tokens import issue_access_token
from chatserver.chat.consumers import ChatConsumer
from chatserver.chat.delivery.localgroups import DIRECT_SENDER
from chatserver.chat.protocol import ProtocolError

from .conftest import ORIGIN
from .races import wait_for


async def test_answers_stored_together_go_out_in_one_pass_of_the_loop():
    consumer = ChatConsumer()
    loop = asyncio.get_running_loop()
    stored = [loop.create_future() for _ in range(3)]
    answered = []

    async def answer(n):
        await stored[n]
        answered.append(n)

    for n in range(3):
        consumer.later(None, answer(n))
    await asyncio.sleep(0)
    seen = []
    for future in stored:  # a batch resolves all its sends at once
        future.set_result(None)
    loop.call_soon(lambda: seen.append(list(answered)))  # runs right after the next pass
    await consumer.settle()
    assert seen == [[0, 1, 2]]


async def test_an_error_frame_that_cannot_be_sent_does_not_stop_later_answers(caplog):
    consumer = ChatConsumer()
    answered = []

    async def answer(name, fail=False):
        if fail:
            raise ProtocolError(4003, "bad")
        answered.append(name)

    async def send_failure(error, frame, text_data):
        raise ConnectionError("the socket is gone")

    consumer.send_failure = send_failure
    consumer.later(None, answer("a"))
    consumer.later(None, answer("b", fail=True))
    consumer.later(None, answer("c"))
    await consumer.settle()
    assert answered == ["a", "c"]
    assert consumer.pending is None
    assert "Could not answer a failed frame" in caplog.text


class RecordingSender:
    """Stands in for the daemon's DirectSender: records the frames written through it."""

    def __init__(self):
        self.factory = object()
        self.open = True
        self.frames = []

    def is_open(self):
        return self.open

    def send_text(self, text):
        self.frames.append(("reply", json.loads(text)))

    def prepare(self, text):
        return text

    def send_prepared(self, prepared):
        self.frames.append(("room", json.loads(prepared)))


@pytest.mark.django_db(transaction=True)
async def test_replies_and_room_frames_go_through_a_direct_sender_while_it_is_open(connect, users):
    sender = RecordingSender()
    path = f"/messaging/?token={issue_access_token(users.alice)}"
    alice = WebsocketCommunicator(application, path, headers=ORIGIN)
    alice.scope["extensions"] = {DIRECT_SENDER: sender}
    assert (await alice.connect())[0]
    await wait_for(lambda: sender.frames)
    assert sender.frames[0][1]["eventType"] == "chat.notifications"

    bob = await connect(users.bob)
    data = {"type": "group", "name": "t", "members": [users.alice.pk]}
    room_id = (await bob.ok("room.create", data))["room"]["id"]
    await wait_for(lambda: len(sender.frames) == 2)
    kind, joined = sender.frames[1]  # the membership frame: written for this socket alone
    assert kind == "reply" and joined["eventType"] == "roomcreate.dispatch"

    frame = {"event_type": "message.send", "data": {"room_id": room_id, "content": "hi"}}
    await alice.send_to(text_data=json.dumps(dict(frame, request_id="a1")))
    await wait_for(lambda: len(sender.frames) == 3)
    assert sender.frames[2][0] == "reply" and sender.frames[2][1]["request_id"] == "a1"
    assert (await bob.expect("message.dispatch"))["message"]["content"] == "hi"

    await bob.ok("message.send", {"room_id": room_id, "content": "hello"})
    await wait_for(lambda: len(sender.frames) == 4)
    kind, dispatched = sender.frames[3]
    assert kind == "room" and dispatched["data"]["message"]["content"] == "hello"
    assert await alice.receive_nothing(0.05)  # nothing took the ASGI path meanwhile

    sender.open = False  # the socket is closing: the ASGI path takes over
    await alice.send_to(text_data=json.dumps(dict(frame, request_id="a2")))
    reply = json.loads(await alice.receive_from())
    assert reply["request_id"] == "a2" and len(sender.frames) == 4
    await alice.disconnect()
