"""Reads written as SQL (storage/raw_reads.py) answer as the ORM does, converters included
(SQLite keeps booleans as integers and datetimes as text). Runs on SQLite and PostgreSQL."""

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from chatserver.chat.models import Message
from chatserver.chat.services import eventlog
from chatserver.chat.services import messages as message_service
from chatserver.chat.services import rooms as room_service
from chatserver.chat.storage.raw_reads import Select

pytestmark = pytest.mark.django_db

FIELDS = ("id", "room", "seq", "content", "is_edited", "is_deleted", "created_at", "edited_at")


def test_rows_are_the_orms_values_typed_alike(users):
    room_id = room_service.create_room(
        users.alice, {"type": "group", "name": "g", "members": [users.bob.pk]}
    ).data["room"]["id"]
    sent = [
        message_service.send_message(users.alice, room_id, {"content": f"m{i}"})[0]["message"]
        for i in range(3)
    ]
    Message.objects.filter(pk=sent[1]["id"]).update(is_edited=True, edited_at=timezone.now())
    ids = [m["id"] for m in sent]
    select = Select(Message, FIELDS, keys=("id",), order_by="id")
    rows = select.rows(ids + [10**9])
    expected = list(Message.objects.filter(pk__in=ids).order_by("pk").values_list(*FIELDS))
    assert [tuple(row) for row in rows] == expected
    assert [type(value) for value in rows[1]] == [type(value) for value in expected[1]]
    assert select.rows([]) == [] and select.rows([10**9]) == []


def test_users_by_id_are_in_bulks_users(users):
    ids = {users.alice.pk, users.carol.pk, 10**9}
    found = eventlog.users_by_id(ids)
    expected = get_user_model().objects.in_bulk(ids)
    assert found.keys() == expected.keys()
    for pk, user in found.items():
        other = expected[pk]
        for field in user._meta.concrete_fields:
            assert getattr(user, field.attname) == getattr(other, field.attname), field.name
        assert user.get_full_name() == other.get_full_name() and not user._state.adding
