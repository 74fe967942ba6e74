"""Races the database must settle: seq assignment, member limits, one-to-one uniqueness.

Real threads with their own database connections, so the locks of the database in use
(SQLite here, PostgreSQL when DATABASE_URL names one) are what is tested.
"""

import threading

import pytest
from django.db import connection

from chatserver.chat import storage
from chatserver.chat.models import Membership, Message, Room, RoomEvent
from chatserver.chat.protocol import ProtocolError
from chatserver.chat.services import messages, rooms

from .races import store_a_resend_and_hold

pytestmark = pytest.mark.django_db(transaction=True)


def race(worker, count):
    """Run ``worker(i)`` in ``count`` threads started together; return results or exceptions."""
    start = threading.Barrier(count)
    results = [None] * count

    def run(i):
        try:
            start.wait()
            results[i] = worker(i)
        except Exception as error:  # noqa: BLE001 - the test inspects what each thread got
            results[i] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.fixture
def people(django_user_model):
    return [django_user_model.objects.create_user(username=f"u{i}") for i in range(8)]


def test_concurrent_sends_get_gap_free_unique_seqs(people):
    owner = people[0]
    change = rooms.create_room(
        owner, {"type": "group", "name": "race", "members": [p.pk for p in people[1:]]}
    )
    room_id = change.data["room_id"]

    def send(i):
        data, duplicate = messages.send_message(people[i % 8], room_id, {"content": f"m{i}"})
        return data["seq"]

    results = race(send, 8)
    assert not [r for r in results if isinstance(r, Exception)], results
    first = change.data["seq"] + 1
    assert sorted(results) == list(range(first, first + 8))
    assert Room.objects.get(pk=room_id).last_seq == first + 7
    assert RoomEvent.objects.filter(room_id=room_id).count() == first + 7
    assert Message.objects.filter(room_id=room_id).count() == 8


def test_resends_with_one_client_msg_id_store_one_message(people):
    change = rooms.create_room(people[0], {"type": "group", "name": "dup"})
    room_id = change.data["room_id"]

    def resend(i):
        data, duplicate = messages.send_message(
            people[0], room_id, {"content": "once", "client_msg_id": "c-1"}
        )
        return data["message"]["id"]

    results = race(resend, 6)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len(set(results)) == 1
    assert Message.objects.filter(room_id=room_id).count() == 1


def test_a_resend_racing_a_batch_is_answered_with_the_winner(people, monkeypatch):
    """Another connection stores the same client_msg_id while a batch is being written: the
    batch's INSERT fails on the unique constraint, nothing of it is stored, the batch is run once
    more (storage.MessageStore.store_sends), and the resend gets the winner's message."""
    alice, bob = people[0], people[1]
    change = rooms.create_room(alice, {"type": "group", "name": "r", "members": [bob.pk]})
    room_id = change.data["room_id"]
    holding, winner = threading.Event(), {}
    never = threading.Event()  # the holder commits after a second, while the batch waits
    batches = []  # the messages of each write
    orm = storage.PORTABLE.messages
    real_store = orm.store_rooms

    async def store_rooms(per_room, outcomes):
        batches.append([m.content for messages in per_room.values() for m in messages.values()])
        return await real_store(per_room, outcomes)

    monkeypatch.setattr(orm, "store_rooms", store_rooms)
    thread = threading.Thread(
        target=store_a_resend_and_hold, args=(room_id, alice, holding, never, winner, 1.0)
    )
    thread.start()
    assert holding.wait(10)
    outcomes = messages.send_messages(
        [
            (bob, room_id, {"content": "before"}),
            (alice, room_id, {"content": "w", "client_msg_id": "race"}),
            (bob, room_id, {"content": "after"}),
        ]
    )
    thread.join(10)
    # Failed together, run once more: the resend is answered with the winner, not written.
    assert batches == [["before", "w", "after"], ["before", "after"]]
    assert [o[1] for o in outcomes] == [False, True, False]
    assert outcomes[1][0]["message"]["id"] == winner["id"]
    assert [o[0]["seq"] for o in outcomes] == [3, 2, 4]  # no seq lost, none twice
    assert Message.objects.filter(room_id=room_id).count() == 3


def test_joins_never_exceed_the_member_limit(people):
    change = rooms.create_room(
        people[0], {"type": "group", "name": "small", "is_public": True, "member_limit": 4}
    )
    room_id = change.data["room_id"]
    results = race(lambda i: rooms.join_room(people[i + 1], room_id), 7)
    joined = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, ProtocolError)]
    assert len(joined) == 3 and len(refused) == 4, results
    assert Membership.objects.filter(room_id=room_id).count() == 4


def test_both_sides_creating_a_one_to_one_room_get_the_same_room(people):
    alice, bob = people[0], people[1]
    pairs = [(alice, bob), (bob, alice)] * 3
    results = race(
        lambda i: rooms.create_room(pairs[i][0], {"type": "direct", "members": [pairs[i][1].pk]}),
        len(pairs),
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({r.data["room_id"] for r in results}) == 1
    assert Room.objects.filter(kind=Room.DIRECT).count() == 1
