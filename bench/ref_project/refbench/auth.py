"""``?token=<JWT>`` authentication for the reference consumer (HS256 with SECRET_KEY, like ours).

The package's README uses a third-party JWT middleware; this one does the same work (decode, one
user query) so both servers pay a comparable price per connect.
"""

from urllib.parse import parse_qs

import jwt
from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser


@database_sync_to_async
def _user(user_id):
    try:
        return get_user_model().objects.get(pk=user_id, is_active=True)
    except get_user_model().DoesNotExist:
        return AnonymousUser()


def issue_token(user_id, lifetime=6 * 3600):
    import time

    now = int(time.time())
    claims = {"sub": str(user_id), "type": "access", "iat": now, "exp": now + lifetime}
    return jwt.encode(claims, settings.SECRET_KEY, algorithm="HS256")


class JWTQueryMiddleware:
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        tokens = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        user = AnonymousUser()
        if tokens:
            try:
                claims = jwt.decode(tokens[0], settings.SECRET_KEY, algorithms=["HS256"])
                user = await _user(int(claims["sub"]))
            except (jwt.PyJWTError, KeyError, ValueError):
                user = AnonymousUser()
        return await self.inner(dict(scope, user=user), receive, send)


def JWTQueryMiddlewareStack(inner):  # noqa: N802 - named like Channels' stacks
    return AuthMiddlewareStack(JWTQueryMiddleware(inner))
