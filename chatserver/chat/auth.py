"""WebSocket authentication: a JWT access token in ``?token=``, else the Django session cookie.

A token that is present but invalid or expired yields an anonymous user, so the consumer closes
with 4001 instead of silently falling back to a cookie.
"""

from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from .tokens import InvalidToken, user_id_from_token


@database_sync_to_async
def _active_user(user_id):
    try:
        return get_user_model().objects.get(pk=user_id, is_active=True)
    except get_user_model().DoesNotExist:
        return AnonymousUser()


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
            user = await _active_user(user_id_from_token(tokens[0]))
        except InvalidToken:
            user = AnonymousUser()
        return await self.inner(dict(scope, user=user, auth_method="token"), receive, send)


def TokenAuthMiddlewareStack(inner):  # noqa: N802 - named like Channels' AuthMiddlewareStack
    """Token auth, falling back to Channels' session and cookie auth when no token is given."""
    return TokenAuthMiddleware(inner)
