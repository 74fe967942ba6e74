"""send_messages: a batch of sends in one transaction, each answered as if sent alone."""

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from chatserver.chat.models import Message, Room, RoomEvent
from chatserver.chat.protocol import ProtocolError
from chatserver.chat.services import messages
from chatserver.chat.services import rooms as room_service

pytestmark = pytest.mark.django_db


def make_room(owner, members, name="g"):
    data = {"type": "group", "name": name, "members": [m.pk for m in members]}
    change = room_service.create_room(owner, data)
    return change.data["room"]["id"]


def codes(outcomes):
    return [o.code if isinstance(o, ProtocolError) else None for o in outcomes]


def test_seqs_follow_the_batch_order_in_every_room(users):
    one, two = make_room(users.alice, [users.bob], "one"), make_room(users.alice, [], "two")
    batch = [
        (users.alice, one, {"content": "a"}),
        (users.alice, two, {"content": "b"}),
        (users.bob, one, {"content": "c"}),
        (users.alice, two, {"content": "d"}),
    ]
    outcomes = messages.send_messages(batch)
    assert [(o[0]["message"]["content"], o[0]["seq"], o[1]) for o in outcomes] == [
        ("a", 2, False),
        ("b", 2, False),
        ("c", 3, False),
        ("d", 3, False),
    ]
    assert Room.objects.get(pk=one).last_seq == 3 and Room.objects.get(pk=two).last_seq == 3
    stored = Message.objects.filter(room_id=one).order_by("seq")
    assert [(m.seq, m.author_id, m.content) for m in stored] == [
        (2, users.alice.pk, "a"),
        (3, users.bob.pk, "c"),
    ]
    events = RoomEvent.objects.filter(room_id=one, seq__gte=2).order_by("seq")
    assert [(e.seq, e.message_id) for e in events] == [(m.seq, m.pk) for m in stored]


def test_a_batch_costs_the_queries_of_one_send_plus_one_per_extra_room(users):
    one, two = make_room(users.alice, [], "one"), make_room(users.alice, [], "two")

    def count(batch):
        with CaptureQueriesContext(connection) as ctx:
            messages.send_messages(batch)
        return len(ctx.captured_queries)

    single = count([(users.alice, one, {"content": "x", "client_msg_id": "s"})])
    many = count(
        [(users.alice, one, {"content": f"{i}", "client_msg_id": f"m{i}"}) for i in range(20)]
    )
    both = count(
        [
            (users.alice, r, {"content": f"{i}", "client_msg_id": f"b{i}"})
            for i, r in enumerate([one, two] * 10)
        ]
    )
    assert many == single
    assert both == single + 1


def test_a_refused_send_leaves_the_rest_of_its_batch_stored(users):
    room_id = make_room(users.alice, [users.bob])
    gone = make_room(users.alice, [], "gone")
    Room.objects.filter(pk=gone).delete()  # deleted after the sender's access was checked
    outcomes = messages.send_messages(
        [
            (users.alice, room_id, {"content": "first"}),
            (users.alice, room_id, {"forwarded_from_id": 999999}),
            (users.alice, gone, {"content": "into the void"}),
            (users.bob, room_id, {"content": "last"}),
        ]
    )
    assert codes(outcomes) == [None, 4004, 4004, None]
    assert [outcomes[0][0]["seq"], outcomes[3][0]["seq"]] == [2, 3]
    assert Message.objects.filter(room_id=room_id).count() == 2


def test_a_resend_inside_the_batch_answers_with_the_first_copy(users):
    room_id = make_room(users.alice, [users.bob])
    other = make_room(users.alice, [], "other")
    outcomes = messages.send_messages(
        [
            (users.alice, room_id, {"content": "hi", "client_msg_id": "c1"}),
            (users.bob, room_id, {"content": "same id, other author", "client_msg_id": "c1"}),
            (users.alice, room_id, {"content": "hi", "client_msg_id": "c1"}),
            (users.alice, other, {"content": "hi", "client_msg_id": "c1"}),
        ]
    )
    assert codes(outcomes) == [None, None, None, 4005]
    (first, dup1), (bobs, dup2), (again, dup3) = outcomes[:3]
    assert (dup1, dup2, dup3) == (False, False, True)
    assert again == first and bobs["message"]["id"] != first["message"]["id"]
    assert Message.objects.filter(client_msg_id="c1").count() == 2
    # Sent again in a later batch: the stored original, not a new message.
    (later,) = messages.send_messages(
        [(users.alice, room_id, {"content": "hi", "client_msg_id": "c1"})]
    )
    assert later == (first, True)


def test_a_resend_of_a_refused_first_copy_gets_the_same_refusal(users):
    room_id = make_room(users.alice, [])
    gone = make_room(users.alice, [], "gone")
    Room.objects.filter(pk=gone).delete()
    outcomes = messages.send_messages(
        [
            (users.alice, gone, {"content": "x", "client_msg_id": "c"}),
            (users.alice, gone, {"content": "x", "client_msg_id": "c"}),
            (users.alice, room_id, {"content": "y"}),
        ]
    )
    assert codes(outcomes) == [4004, 4004, None]


def test_a_client_msg_id_that_raced_in_is_answered_with_the_winner(users, monkeypatch):
    """Another connection stored the same client_msg_id after this batch looked: the INSERT
    fails on the unique constraint, and every send of the batch is retried alone."""
    room_id = make_room(users.alice, [users.bob])
    ((winner, _),) = messages.send_messages(
        [(users.alice, room_id, {"content": "w", "client_msg_id": "race"})]
    )
    lookup = messages._originals
    calls = []

    def first_lookup_misses(keys):
        calls.append(keys)
        return {} if len(calls) == 1 else lookup(keys)

    monkeypatch.setattr(messages, "_originals", first_lookup_misses)
    outcomes = messages.send_messages(
        [
            (users.bob, room_id, {"content": "before"}),
            (users.alice, room_id, {"content": "w", "client_msg_id": "race"}),
            (users.bob, room_id, {"content": "after"}),
        ]
    )
    assert len(calls) > 1  # the batch failed and was retried
    assert codes(outcomes) == [None, None, None]
    assert outcomes[1] == (winner, True)
    assert [outcomes[0][0]["seq"], outcomes[2][0]["seq"]] == [3, 4]  # no seq was lost
    assert Message.objects.filter(room_id=room_id).count() == 3


def test_an_integrity_error_without_a_client_msg_id_is_not_swallowed(users):
    room_id = make_room(users.alice, [])
    # A row squatting on the next seq (no such row can exist without a bug): the send fails loudly.
    Message.objects.create(room_id=room_id, seq=2, author=users.alice, content="squatter")
    with pytest.raises(IntegrityError):
        messages.send_messages([(users.alice, room_id, {"content": "x"})])
