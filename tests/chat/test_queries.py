"""Query counts: history pages, the room list, resume and send do not grow with the data."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chatserver.chat.services import eventlog
from chatserver.chat.services import messages as message_service
from chatserver.chat.services import rooms as room_service
from chatserver.chat.services.permissions import Access

pytestmark = pytest.mark.django_db


def make_room(owner, members, name="g"):
    data = {"type": "group", "name": name, "members": [m.pk for m in members]}
    return room_service.create_room(owner, data).data["room"]["id"]


def fill(room_id, authors, count):
    for i in range(count):
        author = authors[i % len(authors)]
        payload, _ = message_service.send_message(author, room_id, {"content": f"m{i}"})
        message_service.react(
            author,
            Access(room_id, "group", "member", frozenset()),
            payload["message"]["id"],
            {"action": "add", "emoji": "👍"},
        )


def count_queries(fn):
    with CaptureQueriesContext(connection) as ctx:
        fn()
    return len(ctx.captured_queries)


def test_history_page_costs_the_same_for_5_and_50_messages(users):
    small = make_room(users.alice, [users.bob])
    big = make_room(users.alice, [users.bob, users.carol])
    fill(small, [users.alice, users.bob], 5)
    fill(big, [users.alice, users.bob, users.carol], 50)
    n_small = count_queries(lambda: message_service.history(small, {"limit": 50}))
    n_big = count_queries(lambda: message_service.history(big, {"limit": 50}))
    assert n_small == n_big == 2


def test_room_list_costs_the_same_for_2_and_12_rooms(users):
    for i in range(2):
        fill(make_room(users.alice, [users.bob], f"a{i}"), [users.alice], 2)
    n_two = count_queries(lambda: room_service.list_rooms(users.bob, {}))
    for i in range(10):
        fill(make_room(users.alice, [users.bob, users.carol], f"b{i}"), [users.alice], 3)
    room_service.create_room(users.bob, {"type": "direct", "members": [users.carol.pk]})
    n_twelve = count_queries(lambda: room_service.list_rooms(users.bob, {}))
    assert len(room_service.list_rooms(users.bob, {})["rooms"]) == 13
    assert n_two == 4 and n_twelve == 5  # + the peers of one-to-one rooms: one, whatever the page


def test_resume_costs_the_same_for_1_and_5_rooms(users):
    rooms = [make_room(users.alice, [users.bob], f"r{i}") for i in range(5)]
    for room_id in rooms:
        fill(room_id, [users.alice], 4)
    one = count_queries(lambda: eventlog.replay(users.bob, {rooms[0]: 0}, 100))
    five = count_queries(lambda: eventlog.replay(users.bob, dict.fromkeys(rooms, 0), 100))
    # memberships, their rooms' last seqs, events, messages, their authors, reactions
    assert one == five == 6


def test_resumes_of_many_clients_cost_the_same_as_one(users, chat_options):
    """A reconnect storm's resumes are read in one batch (eventlog.replay_many): the queries
    do not grow with the clients, and each client gets its own rooms and cursors."""
    chat_options(REPLAY_CACHE_SECONDS=0)  # every call reads: the queries are what is counted
    rooms = [make_room(users.alice, [users.bob, users.carol], f"r{i}") for i in range(3)]
    for room_id in rooms:
        fill(room_id, [users.alice], 6)
    requests = [
        (users.bob, {rooms[0]: 0, rooms[1]: 4}, 3, None),
        (users.carol, {rooms[1]: 2, rooms[2]: 5}, 3, None),
        (users.bob, {rooms[2]: 6, 999_999: 0}, 3, None),
    ]
    n = count_queries(lambda: eventlog.replay_many(requests))
    assert n == 6
    answers = eventlog.replay_many(requests)
    assert answers == [eventlog.replay(*request) for request in requests]
    for (_, cursors, limit, _), (rooms_out, _) in zip(requests, answers, strict=True):
        for room_id, state in rooms_out.items():
            seqs = [json.loads(event)["data"]["seq"] for event in state["events"]]
            after = cursors[room_id]
            assert seqs == list(range(after + 1, after + 1 + len(seqs)))  # in order, no gap
            assert len(seqs) == max(0, min(limit, state["last_seq"] - after))
            assert state["limited"] == (state["next_after"] < state["last_seq"])
    assert answers[2][1] == [999_999]  # a room the user is not in


def test_send_is_one_short_transaction(users):
    room_id = make_room(users.alice, [users.bob])
    n = count_queries(
        lambda: message_service.send_message(
            users.alice, room_id, {"content": "x", "client_msg_id": "abc"}
        )
    )
    # client_msg_id lookup, SAVEPOINT/BEGIN, seq UPDATE + SELECT, message INSERT, event INSERT
    assert n <= 7


def test_connect_costs_three_queries_when_nothing_is_unread_and_a_constant_otherwise(users):
    from chatserver.chat.storage.orm import opened_now as connect

    for i in range(3):
        make_room(users.alice, [users.bob], f"quiet{i}")
    n_quiet = count_queries(lambda: connect(users.bob, "chan-quiet", True))
    assert n_quiet == 3  # the session INSERT, the open-socket count, the rooms (unread flag)

    for i in range(2):
        fill(make_room(users.alice, [users.bob], f"busy{i}"), [users.alice], 3)
    n_two = count_queries(lambda: connect(users.bob, "chan-two", True))
    for i in range(6):
        fill(make_room(users.alice, [users.bob], f"busier{i}"), [users.alice], 3)
    n_eight = count_queries(lambda: connect(users.bob, "chan-eight", True))
    assert n_two == n_eight


def test_resumes_read_in_several_span_queries_answer_the_same(users, monkeypatch, chat_options):
    """Past SPANS_PER_QUERY rooms, the log is read in more queries (SQLite) and nothing else
    changes."""
    chat_options(REPLAY_CACHE_SECONDS=0)  # the second replay reads too
    rooms = [make_room(users.alice, [users.bob], f"r{i}") for i in range(5)]
    for room_id in rooms:
        fill(room_id, [users.alice], 3)
    requests = [(users.bob, dict.fromkeys(rooms, 1), 10, None)]
    one_query = eventlog.replay_many(requests)
    monkeypatch.setattr(eventlog, "SPANS_PER_QUERY", 2)
    # PostgreSQL reads every span in one query (arrays); SQLite in one per SPANS_PER_QUERY.
    span_queries = 1 if connection.vendor == "postgresql" else 3
    assert count_queries(lambda: eventlog.replay_many(requests)) == 6 + span_queries - 1
    assert eventlog.replay_many(requests) == one_query
    states = one_query[0][0].values()
    assert len(states) == 5 and all(len(s["events"]) == s["last_seq"] - 1 > 0 for s in states)
