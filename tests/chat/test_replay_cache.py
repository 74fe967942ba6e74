"""Replayed frames kept for REPLAY_CACHE_SECONDS (chat/services/replay_cache.py): later replays
read only memberships and last seqs, a change to a message shows at once, a renamed author
within the window, and nothing is kept with the option at 0."""

import json

import pytest

from chatserver.chat.services import eventlog
from chatserver.chat.services import messages as message_service
from chatserver.chat.services.permissions import load_access
from chatserver.chat.services.replay_cache import ReplayCache
from tests.support.clock import ManualClock

from .test_queries import count_queries, fill, make_room

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch):
    clock = ManualClock()
    monkeypatch.setattr(eventlog.replay_cache, "clock", clock)
    return clock


def messages(answer, room_id):
    """The replayed messages of a room (its other events carry none)."""
    events = [json.loads(text)["data"] for text in answer[0][room_id]["events"]]
    return [data["message"] for data in events if "message" in data]


def test_a_replay_within_the_window_reads_no_event_and_answers_the_same(users, clock):
    room_id = make_room(users.alice, [users.bob, users.carol])
    fill(room_id, [users.alice], 4)
    first = eventlog.replay(users.bob, {room_id: 0}, 100)
    queries = count_queries(lambda: eventlog.replay(users.carol, {room_id: 0}, 100))
    assert queries == 2  # memberships and the rooms' last seqs: no event, message or author
    assert eventlog.replay(users.carol, {room_id: 0}, 100) == first
    clock.now += 2.5  # past REPLAY_CACHE_SECONDS (2.0): read again
    assert count_queries(lambda: eventlog.replay(users.carol, {room_id: 0}, 100)) == 6


def test_only_the_seqs_not_kept_are_read(users, clock):
    room_id = make_room(users.alice, [users.bob])
    fill(room_id, [users.alice], 6)
    last = eventlog.replay(users.bob, {room_id: 0}, 100)[0][room_id]["last_seq"]
    eventlog.replay_cache.clear()
    kept = eventlog.replay(users.bob, {room_id: last - 4}, 2)  # two events in the middle
    both = eventlog.replay(users.bob, {room_id: last - 6}, 100)  # before, kept, after
    seqs = [json.loads(e)["data"]["seq"] for e in both[0][room_id]["events"]]
    assert seqs == list(range(last - 5, last + 1))
    assert both[0][room_id]["events"][2:4] == kept[0][room_id]["events"]
    eventlog.replay_cache.clear()
    assert eventlog.replay(users.bob, {room_id: last - 6}, 100) == both


def test_an_edit_shows_at_once_a_rename_within_the_window(users, clock, django_user_model):
    """An edit is a room event (the room's last_seq moves): no kept frame of the room is used.
    A rename is not: replays show it once the window has passed."""
    room_id = make_room(users.alice, [users.bob])
    fill(room_id, [users.alice], 2)
    before = eventlog.replay(users.bob, {room_id: 0}, 100)
    message_id = messages(before, room_id)[-1]["id"]
    message_service.modify_message(
        users.alice,
        load_access(users.alice, room_id),
        message_id,
        {"message_id": message_id, "action": "update", "content": "edited"},
    )
    after = eventlog.replay(users.bob, {room_id: 0}, 100)
    assert messages(after, room_id)[-1]["content"] == "edited"  # as the message is now

    django_user_model.objects.filter(pk=users.alice.pk).update(first_name="Alicia")
    replayed = messages(eventlog.replay(users.bob, {room_id: 0}, 100), room_id)
    assert {m["author"]["display_name"] for m in replayed} == {"Alice Example"}  # kept frames
    clock.now += 2.5
    replayed = messages(eventlog.replay(users.bob, {room_id: 0}, 100), room_id)
    assert {m["author"]["display_name"] for m in replayed} == {"Alicia Example"}


def test_at_zero_nothing_is_kept(users, chat_options):
    chat_options(REPLAY_CACHE_SECONDS=0)
    room_id = make_room(users.alice, [users.bob])
    fill(room_id, [users.alice], 3)
    eventlog.replay(users.bob, {room_id: 0}, 100)
    assert count_queries(lambda: eventlog.replay(users.bob, {room_id: 0}, 100)) == 6


def test_spans_split_around_the_kept_seqs_and_expired_frames_go():
    clock = ManualClock()
    cache = ReplayCache(lambda: 2.0, clock)
    cache.keep({(7, 3): "c", (7, 4): "d", (7, 7): "g", (8, 1): "x"}, {7: 9, 8: 1})
    found, missing = cache.take([(7, 1, 9), (8, 1, 1)], {7: 9, 8: 2})
    assert found == {(7, 3): "c", (7, 4): "d", (7, 7): "g"}  # room 8 moved on: not (8, 1)
    assert missing == [(7, 1, 2), (7, 5, 6), (7, 8, 9), (8, 1, 1)]
    clock.now += 2.0
    assert cache.take([(7, 3, 3)], {7: 9}) == ({}, [(7, 3, 3)])
    cache.keep({(7, 1): "a"}, {7: 9})  # sweeps what expired
    assert list(cache._frames) == [(7, 1)]
