"""The daemon's entry points: system messages and counts."""

import pytest

from chatserver.chat.operations.operator_actions import chat_counts, room_count, system_message
from chatserver.chat.protocol import ProtocolError

pytestmark = pytest.mark.django_db(transaction=True)


async def test_system_message_takes_the_normal_path(connect, users):
    a = await connect(users.alice)
    room_id = (await a.ok("room.create", {"type": "group", "name": "g"}))["room"]["id"]
    data = await system_message(room_id, "maintenance at noon")
    assert data["seq"] == 2 and data["message"]["kind"] == "system"
    assert data["message"]["author"] is None
    assert await a.expect("message.dispatch") == data
    history = await a.ok("room.messages", {"room_id": room_id})
    assert history["messages"][0]["content"] == "maintenance at noon"
    with pytest.raises(ProtocolError):
        await system_message(10**9, "nowhere")


async def test_counts(connect, users):
    a = await connect(users.alice)
    await a.ok("room.create", {"type": "group", "name": "g"})
    await a.ok("room.create", {"type": "direct", "members": [users.bob.pk]})
    assert await room_count() == 2
    counts = await chat_counts()
    assert counts["rooms_by_kind"] == {"direct": 1, "group": 1, "channel": 0}
