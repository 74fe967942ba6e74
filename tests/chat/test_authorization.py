"""The authorization matrix: owner, admin, member, non-member and anonymous x every event.

One private group room: alice owns it, bob is an admin, carol a member, dave is outside, and an
anonymous socket never gets past connect. Each cell is the outcome of one request on a fresh
room: "ok" (a reply that is not an error), "silent" (no reply, no error) or an error code.
"""

import json

import pytest
from channels.testing import WebsocketCommunicator

from chatserver.asgi import application

from .conftest import ORIGIN, team_room

pytestmark = pytest.mark.django_db(transaction=True)

ROLES = ("owner", "admin", "member", "outsider")

# event, data (R = room id, M = id of alice's message), outcome for owner/admin/member/outsider
MATRIX = [
    ("session.heartbeat", {}, ("ok", "ok", "ok", "ok")),
    ("session.resume", {"rooms": {"R": 0}}, ("ok", "ok", "ok", "ok")),
    ("room.create", {"type": "group", "name": "new"}, ("ok", "ok", "ok", "ok")),
    ("room.list", {}, ("ok", "ok", "ok", "ok")),
    ("room.info", {"room_id": "R"}, ("ok", "ok", "ok", 4004)),
    ("room.messages", {"room_id": "R"}, ("ok", "ok", "ok", 4004)),
    ("room.join", {"room_id": "R"}, (4005, 4005, 4005, 4004)),
    ("room.leave", {"room_id": "R"}, ("ok", "ok", "ok", 4004)),
    ("room.add_members", {"room_id": "R", "members": ["erin"]}, ("ok", "ok", 4002, 4004)),
    ("room.remove_members", {"room_id": "R", "members": ["carol"]}, ("ok", "ok", 4002, 4004)),
    ("room.modify", {"room_id": "R", "action": "update", "name": "x"}, ("ok", "ok", 4002, 4004)),
    ("room.modify", {"room_id": "R", "action": "delete"}, ("ok", 4002, 4002, 4004)),
    (
        "room.modify",
        {"room_id": "R", "action": "add_admin", "members": ["carol"]},
        ("ok", 4002, 4002, 4004),
    ),
    ("message.send", {"room_id": "R", "content": "hi"}, ("ok", "ok", "ok", 4004)),
    (
        "message.modify",
        {"message_id": "M", "action": "update", "content": "x"},
        ("ok", 4002, 4002, 4004),
    ),
    ("message.modify", {"message_id": "M", "action": "delete"}, ("ok", "ok", 4002, 4004)),
    (
        "message.react",
        {"message_id": "M", "action": "add", "emoji": "👍"},
        ("ok", "ok", "ok", 4004),
    ),
    ("message.read", {"rooms": {"R": 1}}, ("ok", "ok", "ok", 4004)),
    ("message.acknowledged", {"rooms": {"R": 2}}, ("silent", "silent", "silent", 4004)),
    ("message.typing", {"room_id": "R"}, ("silent", "silent", "silent", 4004)),
    (
        "room.mute",
        {"room_id": "R", "user_id": "carol", "seconds": 60},
        ("ok", "ok", 4002, 4004),
    ),
    ("room.unmute", {"room_id": "R", "user_id": "carol"}, ("ok", "ok", 4002, 4004)),
    ("presence.subscribe", {"room_id": "R"}, ("ok", "ok", "ok", 4004)),
    ("presence.subscribe", {}, ("ok", "ok", "ok", "ok")),
    ("presence.unsubscribe", {}, ("ok", "ok", "ok", "ok")),
    ("presence.hide", {"hidden": True}, ("ok", "ok", "ok", "ok")),
    ("user.block", {"user_id": "erin"}, ("ok", "ok", "ok", "ok")),
    ("user.unblock", {"user_id": "erin"}, ("ok", "ok", "ok", "ok")),
    ("user.search", {"query": "er"}, ("ok", "ok", "ok", "ok")),
    ("room.discover", {}, ("ok", "ok", "ok", "ok")),
]

CASES = [
    pytest.param(event, data, role, outcome, id=f"{event}-{data.get('action', '')}-{role}")
    for event, data, outcomes in MATRIX
    for role, outcome in zip(ROLES, outcomes, strict=True)
] + [
    pytest.param(event, data, "anonymous", 4001, id=f"{event}-{data.get('action', '')}-anonymous")
    for event, data, _ in MATRIX
]


@pytest.fixture
def world(users):
    """The room, set up through the services (the same code the handlers call)."""
    room_id, message_id = team_room(users)
    actors = {"owner": users.alice, "admin": users.bob, "member": users.carol}
    actors["outsider"] = users.dave
    names = {"R": room_id, "M": message_id, "erin": users.erin.pk}
    names["carol"] = users.carol.pk
    return actors, names


def fill(value, names):
    """Replace placeholders ("R", "M", user names) with the ids of this test's world."""
    if isinstance(value, dict):
        return {names.get(k, k) if k in names else k: fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(item, names) for item in value]
    return names.get(value, value) if isinstance(value, str) else value


@pytest.mark.parametrize(("event", "data", "role", "outcome"), CASES)
async def test_authorization_matrix(world, connect, event, data, role, outcome):
    actors, names = world
    data = fill(data, names)
    if "rooms" in data:
        data["rooms"] = {str(k): v for k, v in data["rooms"].items()}
    if role == "anonymous":
        communicator = WebsocketCommunicator(application, "/messaging/", headers=ORIGIN)
        assert (await communicator.connect())[0]
        await communicator.send_to(text_data=json.dumps({"event_type": event, "data": data}))
        assert await communicator.receive_output() == {"type": "websocket.close", "code": 4001}
        assert await communicator.receive_nothing()
        await communicator.disconnect()
        return
    client = await connect(actors[role])
    if outcome == "ok":
        await client.ok(event, data)
    elif outcome == "silent":
        await client.send(event, data)
        # Frames are handled in order: the heartbeat's reply is the next frame only if the
        # event produced no reply and no error.
        await client.ok("session.heartbeat", expect="session.heartbeat")
    else:
        assert await client.error(event, data) == outcome
