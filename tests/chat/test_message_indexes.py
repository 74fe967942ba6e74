"""What a stored message writes to the indexes (migration 0008), and that the lookups the
dropped indexes served still find their rows by index. PostgreSQL only: the plans are its."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from chatserver.chat.models import Message, RoomEvent

from .conftest import team_room

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def indexes(model):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s", [model._meta.db_table]
        )
        return sorted(row[0].split(" USING btree ")[1] for row in cursor.fetchall())


def test_a_plain_message_and_its_log_event_write_six_index_entries():
    """Every index of the two tables but the partial ones takes an entry per message: none
    repeats another's leading column (the room), none goes unread (the log's message ids)."""
    assert [i for i in indexes(Message) if " WHERE " not in i] == [
        "(author_id)",
        "(id)",
        "(room_id, seq)",
    ]
    assert indexes(RoomEvent) == ["(id)", "(room_id, seq)"]


def explained(sql, params):
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table: index if it can
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_deleting_a_message_finds_its_replies_and_forwards_by_index(users):
    """Deleting a message sets its replies' ``parent`` and its forwards' ``forwarded_from`` to
    NULL (SET_NULL): Django finds them by those columns, now indexed only where set."""
    room_id, hello = team_room(users)
    reply = Message.objects.create(room_id=room_id, seq=10, author=users.bob, parent_id=hello)
    forward = Message.objects.create(
        room_id=room_id, seq=11, author=users.bob, forwarded_from_id=hello
    )
    with transaction.atomic():
        with CaptureQueriesContext(connection) as captured:
            Message.objects.filter(pk=hello).delete()
        reply.refresh_from_db()
        forward.refresh_from_db()
        assert (reply.parent_id, forward.forwarded_from_id) == (None, None)
        plans = {}
        for column, index in (
            ("parent_id", "chat_message_parent"),
            ("forwarded_from_id", "chat_message_forwarded_from"),
        ):
            (sql,) = [
                q["sql"]
                for q in captured.captured_queries
                if f'WHERE "chat_message"."{column}"' in q["sql"]
            ]
            plans[index] = explained(sql, None)
        for index, plan in plans.items():
            assert index in plan, plan
