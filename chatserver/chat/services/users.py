"""Users as other users meet them: finding them, who may be added to rooms, and blocking.

Refusals never tell an unknown id, an inactive user and a user who blocked you apart: the room
events would otherwise enumerate the user table and tell who blocked whom.
"""

from functools import cache

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Q, Value
from django.db.models.functions import Concat

from ..models import Block
from ..protocol import ERROR_NOT_FOUND, ERROR_PERMISSION_DENIED, ProtocolError
from ..serializers import user_payload
from ..storage.raw_reads import Select


@cache
def _users():
    """The user model's rows, every concrete column (``from_db``'s order)."""
    model = get_user_model()
    names = [field.attname for field in model._meta.concrete_fields]
    return Select(model, names, keys=(model._meta.pk.name,))


def users_by_id(user_ids):
    """``{id: user}`` for the ids (a collection), as ``in_bulk`` answers, for the batches of a
    reconnect storm (storage/raw_reads.py says why not ``in_bulk``)."""
    select = _users()
    return {
        row[0]: select.model.from_db(DEFAULT_DB_ALIAS, select.names, row)
        for row in select.rows(list(user_ids))
    }


def addable_users(actor, user_ids):
    """The users ``actor`` may put in a room, by id order; one refusal for any id that is
    unknown, inactive or has blocked ``actor``."""
    ids = set(user_ids)
    users = list(
        get_user_model()
        .objects.filter(pk__in=ids, is_active=True)
        .exclude(chat_blocks__blocked=actor)
        .order_by("pk")
    )
    if len(users) != len(ids):
        raise ProtocolError(ERROR_PERMISSION_DENIED, "Some of these users cannot be added.")
    return users


def _target(actor, user_id):
    if user_id == actor.pk:
        raise ProtocolError(ERROR_PERMISSION_DENIED, "You cannot block yourself.")
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise ProtocolError(ERROR_NOT_FOUND, "User not found.")
    return user


def block(actor, user_id):
    """Block a user (repeating it changes nothing); returns the reply data."""
    user = _target(actor, user_id)
    _, created = Block.objects.get_or_create(blocker=actor, blocked=user)
    return {"user_id": user.pk, "blocked": True, "changed": created}


def unblock(actor, user_id):
    deleted, _ = Block.objects.filter(blocker=actor, blocked_id=user_id).delete()
    return {"user_id": user_id, "blocked": False, "changed": bool(deleted)}


SEARCH_MAX_RESULTS = 20


def search(actor, query):
    """Active users whose username, first name, last name or full name starts with ``query``
    (case-insensitive), at most SEARCH_MAX_RESULTS by username; the searcher and users who
    blocked the searcher are left out. Only ids, usernames and display names are returned."""
    full_name = Concat("first_name", Value(" "), "last_name")
    matches = (
        get_user_model()
        .objects.annotate(full_name=full_name)
        .filter(
            Q(username__istartswith=query)
            | Q(first_name__istartswith=query)
            | Q(last_name__istartswith=query)
            | Q(full_name__istartswith=query),
            is_active=True,
        )
        .exclude(pk=actor.pk)
        .exclude(chat_blocks__blocked=actor)
        .order_by("username")
    )
    return {"query": query, "users": [user_payload(user) for user in matches[:SEARCH_MAX_RESULTS]]}
