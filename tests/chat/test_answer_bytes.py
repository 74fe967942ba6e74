"""room.messages and session.resume answers are bounded in bytes (MAX_ANSWER_BYTES): a long
answer stops early with has_more, and paging on returns every message exactly once."""

import json

import pytest

from .test_messages import send, setup_room

pytestmark = pytest.mark.django_db(transaction=True)

CONTENT = "é" * 1000  # 6000 bytes in a frame: JSON escapes every non-ASCII character


def frame_bytes(data):
    return len(json.dumps(data, separators=(",", ":")))


async def fill_room(connect, users, count):
    room_id, a, _ = await setup_room(connect, users)
    for n in range(count):
        await send(a, room_id, f"{n:03d}{CONTENT}")
    return room_id, a


async def test_history_pages_are_cut_by_bytes_and_page_on(connect, users, chat_options):
    chat_options(MAX_ANSWER_BYTES=20_000)
    room_id, a = await fill_room(connect, users, 10)  # seqs 2..11, ~6 KB each

    newest = await a.ok("room.messages", {"room_id": room_id, "limit": 100})
    assert newest["has_more"] is True
    assert [m["seq"] for m in newest["messages"]] == [9, 10, 11]  # the newest that fit
    assert frame_bytes(newest["messages"]) < 20_000

    seen, page = [], newest
    while True:
        seen = [m["seq"] for m in page["messages"]] + seen
        if not page["has_more"]:
            break
        before = page["messages"][0]["seq"]
        page = await a.ok("room.messages", {"room_id": room_id, "before": before, "limit": 100})
        assert len(page["messages"]) <= 3
    assert seen == list(range(2, 12))

    forward = await a.ok("room.messages", {"room_id": room_id, "after": 1, "limit": 100})
    assert [m["seq"] for m in forward["messages"]] == [2, 3, 4] and forward["has_more"] is True


async def test_one_message_over_the_bound_is_still_answered(connect, users, chat_options):
    chat_options(MAX_ANSWER_BYTES=100)
    room_id, a = await fill_room(connect, users, 2)
    page = await a.ok("room.messages", {"room_id": room_id, "limit": 100})
    assert [m["seq"] for m in page["messages"]] == [3] and page["has_more"] is True


async def test_resume_is_cut_by_bytes_and_resumes_from_next_after(connect, users, chat_options):
    chat_options(MAX_ANSWER_BYTES=20_000)
    room_id, a = await fill_room(connect, users, 10)
    cursor, seqs, answers = 0, [], 0
    while True:
        resumed = await a.ok("session.resume", {"rooms": {str(room_id): cursor}})
        state = resumed["rooms"][str(room_id)]
        answers += 1
        assert frame_bytes(state["events"]) < 20_000 or len(state["events"]) == 1
        seqs += [event["data"]["seq"] for event in state["events"]]
        assert resumed["has_more"] is state["limited"]
        if not resumed["has_more"]:
            break
        cursor = state["next_after"]
    assert seqs == list(range(1, 12))  # the room's creation, then every message, once
    assert answers >= 4


async def test_resume_defers_whole_rooms_past_the_bound(connect, users, chat_options):
    chat_options(MAX_ANSWER_BYTES=8_000)
    first, a = await fill_room(connect, users, 2)
    second = (await a.ok("room.create", {"type": "group", "name": "two", "members": []}))["room"]
    await send(a, second["id"], CONTENT)
    cursors = {str(first): 1, str(second["id"]): 1}
    resumed = await a.ok("session.resume", {"rooms": cursors})
    assert resumed["has_more"] is True
    states = resumed["rooms"]
    assert len(states[str(first)]["events"]) == 1 and states[str(first)]["limited"] is True
    assert states[str(second["id"])] == {
        "events": [],
        "limited": True,
        "next_after": 1,
        "last_seq": 2,
    }
