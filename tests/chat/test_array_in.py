"""``__in`` answers as Django's does; on PostgreSQL in one query text whatever the list's length
(storage/array_in.py). Runs on SQLite and again on PostgreSQL (make test)."""

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chatserver.chat.models import Session, TokenFamily

pytestmark = pytest.mark.django_db


def sql_of(queryset):
    with CaptureQueriesContext(connection) as captured:
        rows = list(queryset)
    return rows, captured.captured_queries[-1]["sql"]


@pytest.fixture
def sessions(users):
    now = timezone.now()
    return [
        Session.objects.create(
            user=user, channel_name=f"socket.{user.username}", last_heartbeat=now
        )
        for user in (users.alice, users.bob, users.carol)
    ]


def test_ints_strings_uuids_and_model_instances_match_as_with_in(users, sessions):
    User = get_user_model()  # noqa: N806 - a model class
    everyone = [users.alice, users.bob, users.carol, users.dave, users.erin]
    ids = [u.pk for u in everyone]
    assert set(User.objects.filter(pk__in=ids[:2])) == {users.alice, users.bob}
    assert set(User.objects.filter(pk__in=[*ids[:2], 10**9])) == {users.alice, users.bob}
    by_name = Session.objects.filter(channel_name__in=["socket.bob", "socket.carol", "nobody"])
    assert {s.user_id for s in by_name} == {users.bob.pk, users.carol.pk}
    by_user = Session.objects.filter(user__in=[users.alice, users.carol])  # instances: their pks
    assert {s.user_id for s in by_user} == {users.alice.pk, users.carol.pk}
    family = TokenFamily.objects.create(id=uuid.uuid4(), user=users.alice, current_jti="j")
    assert list(TokenFamily.objects.filter(pk__in=[uuid.uuid4(), family.pk])) == [family]


def test_none_matches_nothing_and_an_empty_list_runs_no_query(users, sessions):
    assert list(Session.objects.filter(user_id__in=[None, users.bob.pk])) == [sessions[1]]
    with CaptureQueriesContext(connection) as captured:
        assert list(Session.objects.filter(user_id__in=[None])) == []
        assert list(Session.objects.filter(user_id__in=[])) == []
    assert captured.captured_queries == []
    # Excluding nothing keeps every row.
    assert Session.objects.exclude(user_id__in=[]).count() == 3


def test_a_subquery_and_other_value_types_keep_djangos_sql(users, sessions):
    User = get_user_model()  # noqa: N806 - a model class
    named = User.objects.filter(username__in=["alice", "bob"])
    rows, sql = sql_of(Session.objects.filter(user__in=named))
    assert {s.user_id for s in rows} == {users.alice.pk, users.bob.pk}
    assert " IN (SELECT " in sql
    moments = [sessions[0].last_heartbeat, sessions[2].last_heartbeat]
    rows, sql = sql_of(Session.objects.filter(last_heartbeat__in=moments))
    assert len(rows) == 3 and " IN (" in sql and "ANY(" not in sql  # one heartbeat time


def test_on_postgresql_one_query_text_whatever_the_lists_length(users, sessions):
    sent = []  # (sql template, params) as handed to the database driver

    def record(execute, sql, params, many, context):
        sent.append((sql, params))
        return execute(sql, params, many, context)

    few, many = [users.alice.pk, users.bob.pk], [users.alice.pk, *range(10**6, 10**6 + 300)]
    with connection.execute_wrapper(record):
        rows_few = list(Session.objects.filter(user_id__in=few).values_list("user_id"))
        rows_many = list(Session.objects.filter(user_id__in=many).values_list("user_id"))
    assert sorted(rows_few) == sorted([(users.alice.pk,), (users.bob.pk,)])
    assert rows_many == [(users.alice.pk,)]
    (sql_few, params_few), (sql_many, params_many) = sent
    if connection.vendor == "postgresql":
        assert "= ANY(%s::" in sql_few and sql_few == sql_many
        assert list(params_few) == [few] and list(params_many) == [many]
    else:  # Django's IN: a placeholder per value
        assert len(params_few) == 2 and len(params_many) == 301
