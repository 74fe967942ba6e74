"""Encoding server frames (protocol/frames.py): the resume answer joins events encoded once."""

import json

import pytest

from chatserver.chat.protocol import (
    RESUME,
    check_server_frame,
    encode_event,
    encode_resume,
)

EVENT = {
    "eventType": "message.dispatch",
    "data": {
        "room_id": 7,
        "seq": 3,
        "message": {
            "id": 11, "room_id": 7, "seq": 3, "kind": "text",
            "author": {"id": 2, "username": "bob", "display_name": "Bøb \"B\""},
            "content": "é\n\u2028", "client_msg_id": None, "parent_message_id": None,
            "forwarded_from_id": None, "is_edited": False, "is_deleted": False,
            "created_at": "2026-11-28T03:00:00+00:00", "edited_at": None, "reactions": [],
        },
    },
}  # fmt: skip


@pytest.mark.parametrize("request_id", [None, 'r"1\\'])
@pytest.mark.parametrize(
    "rooms, missing, has_more",
    [
        ({}, [], False),
        ({}, [5, 6], False),
        ({7: {"events": [EVENT], "limited": True, "next_after": 3, "last_seq": 9}}, [], True),
        (
            {
                7: {"events": [EVENT, EVENT], "limited": False, "next_after": 3, "last_seq": 3},
                8: {"events": [], "limited": False, "next_after": 0, "last_seq": 0},
            },
            [9],
            False,
        ),
    ],
)
def test_a_resume_answer_reads_as_if_encoded_whole(rooms, missing, has_more, request_id):
    encoded = {
        room_id: {**state, "events": [encode_event(*_args(e)) for e in state["events"]]}
        for room_id, state in rooms.items()
    }
    text = encode_resume(encoded, missing, has_more, request_id)
    whole = {
        "rooms": {str(room_id): state for room_id, state in rooms.items()},
        "missing": missing,
        "has_more": has_more,
    }
    assert json.loads(text) == json.loads(encode_event(RESUME, whole, request_id))
    check_server_frame(json.loads(text))
    assert text.isascii()


def test_a_room_events_length_is_its_size_in_bytes():
    text = encode_event(*_args(EVENT))
    assert len(text) == len(text.encode()) and json.loads(text) == EVENT


def _args(event):
    return event["eventType"], event["data"]
