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


def test_a_batch_costs_a_constant_number_of_queries_plus_one_per_extra_room(users):
    rooms = [make_room(users.alice, [], f"r{i}") for i in range(3)]
    ids = iter(range(1000))

    def count(room_ids, per_room):
        batch = [
            (users.alice, room_id, {"content": "x", "client_msg_id": f"c{next(ids)}"})
            for _ in range(per_room)
            for room_id in room_ids
        ]
        with CaptureQueriesContext(connection) as ctx:
            outcomes = messages.send_messages(batch)
        assert codes(outcomes) == [None] * len(batch)
        return len(ctx.captured_queries)

    assert count(rooms[:1], 20) == count(rooms[:1], 1)
    assert count(rooms[:2], 10) == count(rooms[:2], 1)
    assert count(rooms, 1) == count(rooms[:2], 1) + 1


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
    (elsewhere,) = messages.send_messages(
        [(users.alice, other, {"content": "hi", "client_msg_id": "c1"})]
    )
    assert codes([elsewhere]) == [4005]
    assert Message.objects.filter(client_msg_id="c1").count() == 2


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


def test_an_integrity_error_without_a_client_msg_id_is_not_swallowed(users):
    room_id = make_room(users.alice, [])
    # A row squatting on the next seq (no such row can exist without a bug): the send fails loudly.
    Message.objects.create(room_id=room_id, seq=2, author=users.alice, content="squatter")
    with pytest.raises(IntegrityError):
        messages.send_messages([(users.alice, room_id, {"content": "x"})])
