"""Every error code and close code, and that the socket survives every error."""

import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from chatserver.asgi import application
from chatserver.chat.auth.tokens import issue_access_token
from chatserver.chat.handlers import rooms as room_handlers

from .conftest import ORIGIN

pytestmark = pytest.mark.django_db(transaction=True)


async def raw_error(client, text):
    await client.communicator.send_to(text_data=text)
    frame = await client.recv()
    assert frame["eventType"] == "error", frame
    return frame


@pytest.mark.parametrize(
    ("text", "request_id"),
    [
        ("not json", None),
        ("[1, 2]", None),
        ('{"data": {}}', None),
        ('{"event_type": "", "request_id": "q"}', "q"),
        ('{"event_type": "room.list", "data": [], "request_id": "q2"}', "q2"),
        ('{"event_type": "room.list", "request_id": 5}', None),
    ],
)
async def test_malformed_frames_are_4000_and_echo_request_id(connect, users, text, request_id):
    a = await connect(users.alice)
    frame = await raw_error(a, text)
    assert frame["error"]["code"] == 4000
    assert frame.get("request_id") == request_id
    await a.ok("session.heartbeat")  # still open


async def test_binary_frame_is_4000(connect, users):
    a = await connect(users.alice)
    await a.communicator.send_to(bytes_data=b"\x00\x01")
    frame = await a.recv()
    assert frame["error"]["code"] == 4000


async def test_unknown_event_is_4007(connect, users):
    a = await connect(users.alice)
    frame = await raw_error(a, json.dumps({"event_type": "room.explode", "request_id": "x"}))
    assert frame["error"] == {
        "code": 4007,
        "detail": "Unknown event_type 'room.explode'.",
        "event_type": "room.explode",
    }
    assert frame["request_id"] == "x"


async def test_validation_not_found_permission_conflict(connect, users):
    a, b = await connect(users.alice), await connect(users.bob)
    room_id = (
        await a.ok("room.create", {"type": "channel", "name": "c", "members": [users.bob.pk]})
    )["room"]["id"]
    await b.expect("roomcreate.dispatch")
    assert await a.error("room.info", {"room_id": "abc"}) == 4003
    assert await a.error("room.info", {"room_id": True}) == 4003
    assert await a.error("room.info", {}) == 4003
    assert await a.error("room.create", {"type": "group"}) == 4003  # no name
    assert await a.error("room.create", {"type": "group", "name": "x" * 101}) == 4003
    assert await a.error("room.info", {"room_id": 10**9}) == 4004
    assert await b.error("message.send", {"room_id": room_id, "content": "x"}) == 4002
    assert await a.error("room.join", {"room_id": room_id}) == 4005


async def test_ids_and_cursors_are_ascii_digits_in_range(connect, users):
    a = await connect(users.alice)
    room_id = (await a.ok("room.create", {"type": "group", "name": "g"}))["room"]["id"]
    # The room's id in Arabic-Indic digits, which int() would read as that id.
    arabic = "".join(chr(0x660 + int(digit)) for digit in str(room_id))
    for bad in ["\u00b2", arabic, " 1", "+1", "1_0", "-1", "0", "9223372036854775808"]:
        assert await a.error("room.info", {"room_id": bad}) == 4003, bad
    assert await a.error("session.resume", {"rooms": {arabic: 0}}) == 4003
    assert (await a.ok("room.info", {"room_id": str(room_id)}))["room"]["id"] == room_id
    for cursor in ["0:9223372036854775808", "0:0", "\u0661:1", "1:2:3", "x", "-5:1", " 1:1"]:
        assert await a.error("room.list", {"before": cursor}) == 4003, cursor
    assert (await a.ok("room.list", {"before": "0:1"}))["rooms"] == []
    (room,) = (await a.ok("room.list", {"before": "99999999999999999:1"}))["rooms"]
    assert room["id"] == room_id


@pytest.mark.parametrize("bad", ["nul \x00 byte", "lone \ud83d high", "\udc00"])
async def test_text_no_database_can_store_is_4003_and_the_sends_around_it_are_stored(
    connect, users, bad
):
    """U+0000 and unpaired surrogates (JSON escapes) would fail the whole batch they are
    stored in, the sends of others with them; they are refused alone, before storing."""
    a, b = await connect(users.alice), await connect(users.bob)
    data = {"type": "group", "name": "g", "members": [users.bob.pk]}
    room_id = (await a.ok("room.create", data))["room"]["id"]
    await b.expect("roomcreate.dispatch")
    for request_id, content in (("s1", "before"), ("s2", bad), ("s3", "after")):
        await a.send("message.send", {"room_id": room_id, "content": content}, request_id)
    replies = [await a.recv() for _ in range(3)]
    assert [r["request_id"] for r in replies] == ["s1", "s2", "s3"]
    assert replies[1]["eventType"] == "error" and replies[1]["error"]["code"] == 4003
    assert [replies[i]["data"]["message"]["content"] for i in (0, 2)] == ["before", "after"]
    assert [(await b.expect("message.dispatch"))["seq"] for _ in range(2)] == [2, 3]
    send = {"room_id": room_id, "content": "x", "client_msg_id": bad}
    assert await a.error("message.send", send) == 4003
    assert await a.error("room.create", {"type": "group", "name": bad}) == 4003
    # A surrogate pair escaped in JSON is one character, stored as such.
    smile = await a.ok("message.send", {"room_id": room_id, "content": "\ud83d\ude00"})
    assert smile["message"]["content"] == "\U0001f600"


async def test_internal_error_is_4006_without_traceback(connect, users, monkeypatch, caplog):
    def explode(*args):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(room_handlers, "list_rooms_db", database_sync_to_async(explode))
    a = await connect(users.alice)
    frame = await a.request("room.list")
    assert frame["error"] == {
        "code": 4006,
        "detail": "Internal server error.",
        "event_type": "room.list",
    }
    assert "secret" not in json.dumps(frame)
    assert "secret internals" in caplog.text  # logged for the operator, not sent
    await a.ok("session.heartbeat")


async def test_rate_limit_is_4029_per_user_and_class(connect, users, chat_options):
    limits = {
        "send": {"rate": 0.001, "burst": 2},
        "typing": {"rate": 1, "burst": 1},
        "read": {"rate": 0.001, "burst": 3},
        "manage": {"rate": 1, "burst": 5},
    }
    chat_options(RATE_LIMITS=limits)
    a1, a2 = await connect(users.alice), await connect(users.alice)
    await a1.ok("session.heartbeat")
    await a2.ok("session.heartbeat")
    await a1.ok("room.list")
    assert await a2.error("room.list") == 4029  # the same user's budget, across sockets
    room_id = (await a1.ok("room.create", {"type": "group", "name": "g"}))["room"]["id"]
    await a2.expect("roomcreate.dispatch")
    await a1.ok("message.send", {"room_id": room_id, "content": "1"})
    await a1.ok("message.send", {"room_id": room_id, "content": "2"})
    assert await a1.error("message.send", {"room_id": room_id, "content": "3"}) == 4029


async def test_anonymous_and_bad_token_close_with_4001():
    for path in ("/messaging/", "/messaging/?token=not-a-jwt"):
        communicator = WebsocketCommunicator(application, path, headers=ORIGIN)
        connected, _ = await communicator.connect()
        assert connected  # accepted first, so the client can read the code
        assert await communicator.receive_output() == {"type": "websocket.close", "code": 4001}
        await communicator.disconnect()


async def test_foreign_origin_is_refused(users):
    path = f"/messaging/?token={issue_access_token(users.alice)}"
    communicator = WebsocketCommunicator(
        application, path, headers=[(b"origin", b"http://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected


@pytest.mark.parametrize("path", ["/", "/admin/", "/messaging", "/messaging/x/", "/echo/"])
async def test_handshake_to_an_unknown_path_is_refused_with_one_info_line(users, path, caplog):
    caplog.set_level("INFO")
    communicator = WebsocketCommunicator(application, path, headers=ORIGIN)
    connected, _ = await communicator.connect()
    assert not connected  # Daphne answers a close before accept with HTTP 403
    await communicator.wait()
    errors = [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL") or r.exc_info]
    assert not errors, errors
    (line,) = [r for r in caplog.records if "unknown path" in r.getMessage()]
    assert line.levelname == "INFO" and path in line.getMessage()


async def test_oversized_frame_closes_with_1009(connect, users, chat_options):
    chat_options(MAX_FRAME_BYTES=1000)
    a = await connect(users.alice)
    await a.communicator.send_to(text_data=json.dumps({"event_type": "x", "pad": "é" * 600}))
    assert await a.communicator.receive_output() == {"type": "websocket.close", "code": 1009}
    b = await connect(users.bob)
    await b.communicator.send_to(bytes_data=b"x" * 1001)
    assert await b.communicator.receive_output() == {"type": "websocket.close", "code": 1009}
