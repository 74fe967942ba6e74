"""WebSocket authentication: a JWT access token in ``?token=``, else the Django session cookie.

A token that is present but invalid, expired or revoked (tokens.py) yields an anonymous user, so
the consumer closes with 4001 instead of silently falling back to a cookie.
"""

import uuid
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.db.models import Exists

from ..models import TokenFamily
from .tokens import InvalidToken, decode, fingerprint_matches


@database_sync_to_async
def _token_user(claims):
    """The active user an access token names, if its password and family still hold: one
    query (the family's revocation is read in the same statement)."""
    users = get_user_model().objects.filter(pk=claims["user_id"], is_active=True)
    family = claims.get("fid")
    if family is not None:
        try:
            family = uuid.UUID(str(family))
        except ValueError:
            return AnonymousUser()
        revoked = TokenFamily.objects.filter(pk=family).exclude(revoked_at__isnull=True)
        users = users.annotate(family_revoked=Exists(revoked))
    user = users.first()
    if user is None or getattr(user, "family_revoked", False):
        return AnonymousUser()
    if not fingerprint_matches(user, claims):  # the password changed since
        return AnonymousUser()
    return user


class TokenAuthMiddleware:
    """Authenticate by ``?token=`` when one is given, else hand over to cookie/session auth.

    A token connection never touches the session store: one database call per connect.
    """

    def __init__(self, inner):
        self.inner = inner
        self.cookie_auth = AuthMiddlewareStack(inner)

    async def __call__(self, scope, receive, send):
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        tokens = query.get("token")
        if not tokens:
            return await self.cookie_auth(scope, receive, send)
        try:
            claims = decode(tokens[0])
        except InvalidToken:
            user, family = AnonymousUser(), None
        else:
            user, family = await _token_user(claims), claims.get("fid")
        scope = dict(scope, user=user, auth_method="token", token_family=family)
        return await self.inner(scope, receive, send)


def TokenAuthMiddlewareStack(inner):  # noqa: N802 - named like Channels' AuthMiddlewareStack
    """Token auth, falling back to Channels' session and cookie auth when no token is given."""
    return TokenAuthMiddleware(inner)
