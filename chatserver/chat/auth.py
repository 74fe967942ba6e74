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
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        tokens = query.get("token")
        if tokens:
            try:
                user = await _active_user(user_id_from_token(tokens[0]))
            except InvalidToken:
                user = AnonymousUser()
            scope = dict(scope, user=user, auth_method="token")
        return await self.inner(scope, receive, send)


def TokenAuthMiddlewareStack(inner):  # noqa: N802 - named like Channels' AuthMiddlewareStack
    """Session and cookie auth from Channels, with the token taking precedence when given."""
    return AuthMiddlewareStack(TokenAuthMiddleware(inner))
