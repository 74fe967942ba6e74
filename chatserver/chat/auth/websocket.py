"""WebSocket authentication: a JWT access token in ``?token=``, else the Django session cookie.

A token that is present but invalid, expired or revoked (tokens.py) yields an anonymous user, so
the consumer closes with 4001 instead of silently falling back to a cookie.
"""

import uuid
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser

from ..models import TokenFamily
from ..services.users import users_by_id
from ..storage.call_queue import Batcher
from ..storage.raw_reads import Select
from .tokens import InvalidToken, decode, fingerprint_matches

_families = Select(TokenFamily, ("id", "revoked_at"), keys=("id",))


def token_users(claims_list):
    """The active user each access token names, if its password and family still hold, else
    AnonymousUser: two queries for a whole batch of handshakes (users, revoked families)."""
    families = [_family(claims) for claims in claims_list]
    users = users_by_id({claims["user_id"] for claims in claims_list})
    named = {family for family in families if family}
    revoked = {family for family, revoked_at in _families.rows(named) if revoked_at is not None}
    answers = []
    for claims, family in zip(claims_list, families, strict=True):
        user = users.get(claims["user_id"])
        if (
            user is None
            or not user.is_active
            or family is False
            or family in revoked
            or not fingerprint_matches(user, claims)  # the password changed since
        ):
            answers.append(AnonymousUser())
        else:
            answers.append(user)
    return answers


def _family(claims):
    """The token family a token names: a UUID, None for none, False for one that is no UUID."""
    if "fid" not in claims:
        return None
    try:
        return uuid.UUID(str(claims["fid"]))
    except ValueError:
        return False


# The handshakes of a reconnect storm are checked together: a few queries per batch.
_token_checks = Batcher(database_sync_to_async(token_users))


async def _token_user(claims):
    return await _token_checks.submit(claims)


class TokenAuthMiddleware:
    """Authenticate by ``?token=`` when one is given, else hand over to cookie/session auth.

    A token connection never touches the session store; its check shares a database call
    with the handshakes in flight (token_users).
    """

    def __init__(self, inner):
        self.inner = inner
        self.cookie_auth = AuthMiddlewareStack(inner)

    async def __call__(self, scope, receive, send):
        token = _token_of(scope)
        if token is None:
            return await self.cookie_auth(scope, receive, send)
        # This frame lives as long as the socket: it keeps the answer, not the token and its
        # claims (tests/daemon/test_memory_per_socket.py).
        user, family = await _authenticate(token)
        del token
        scope = dict(scope, user=user, auth_method="token", token_family=family)
        return await self.inner(scope, receive, send)


def _token_of(scope):
    """The ``?token=`` of the handshake, or None."""
    tokens = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return tokens[0] if tokens else None


async def _authenticate(token):
    """``(user, token family)``: AnonymousUser for a token that is invalid, expired or revoked."""
    try:
        claims = decode(token)
    except InvalidToken:
        return AnonymousUser(), None
    return await _token_user(claims), claims.get("fid")


def TokenAuthMiddlewareStack(inner):  # noqa: N802 - named like Channels' AuthMiddlewareStack
    """Token auth, falling back to Channels' session and cookie auth when no token is given."""
    return TokenAuthMiddleware(inner)
