"""The chat application's metrics move with what the application does (full ASGI app, real
in-memory layer, real database): connects, stored messages and batches, room frames, latency."""

import pytest
from channels.testing import WebsocketCommunicator
from prometheus_client import REGISTRY

from chatserver.asgi import application
from chatserver.chat.operations import metrics

from .conftest import ORIGIN

pytestmark = pytest.mark.django_db(transaction=True)


class Delta:
    """Samples of the process-wide registry, read against a starting point."""

    def __init__(self):
        self.start = self._read()

    @staticmethod
    def _read():
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in REGISTRY.collect()
            if family.name.startswith("chatserver_")
            for sample in family.samples
        }

    def __call__(self, name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return self._read().get(key, 0.0) - self.start.get(key, 0.0)


async def test_connects_are_counted_by_outcome(users, connect):
    delta = Delta()
    await connect(users.alice)
    await connect(users.bob)
    refused = WebsocketCommunicator(application, "/messaging/?token=nope", headers=ORIGIN)
    await refused.connect()
    assert (await refused.receive_output(2))["code"] == 4001
    await refused.disconnect()

    assert delta("chatserver_websocket_connects_total", outcome="accepted") == 2
    assert delta("chatserver_websocket_connects_total", outcome="refused") == 1
    # Each accepted socket read its state with one timed database call.
    assert delta("chatserver_database_seconds_count", operation="connect") == 2
    # Joining the sockets' groups asked the layer nothing past the process's one subscription.
    assert delta("chatserver_channel_layer_seconds_count", operation="group_add") <= 1


async def test_stored_messages_batches_and_room_frames(users, connect):
    alice, bob = await connect(users.alice), await connect(users.bob)
    data = {"type": "group", "name": "g", "members": [users.bob.pk]}
    room_id = (await alice.ok("room.create", data))["room"]["id"]
    await bob.expect("roomcreate.dispatch")

    delta = Delta()
    for n in range(3):
        send = {"room_id": room_id, "content": f"m{n}", "client_msg_id": f"c{n}"}
        await alice.ok("message.send", send, expect="message.dispatch")
        await bob.expect("message.dispatch")
    resend = {"room_id": room_id, "content": "m0", "client_msg_id": "c0"}
    assert (await alice.ok("message.send", resend))["duplicate"] is True
    await bob.nothing()

    assert delta("chatserver_messages_stored_total") == 3  # the resend stored nothing
    batches = delta("chatserver_message_batch_size_count")
    assert batches >= 1
    assert delta("chatserver_message_batch_size_sum") == 4  # every send went through a batch
    assert delta("chatserver_database_seconds_count", operation="store_messages") == batches
    assert delta("chatserver_database_seconds_sum", operation="store_messages") > 0
    # Bob's socket got each frame; Alice's, which asked, got a reply instead.
    assert delta("chatserver_room_frame_deliveries_total") == 3
    assert delta("chatserver_channel_layer_seconds_count", operation="group_send") >= 1


def test_frames_dropped_counts_by_reason():
    delta = Delta()
    metrics.frames_dropped(3, "closed")
    metrics.frames_dropped(2, "buffer_full")
    metrics.frames_dropped(1, "closed")
    assert delta("chatserver_frames_dropped_total", reason="closed") == 4
    assert delta("chatserver_frames_dropped_total", reason="buffer_full") == 2
