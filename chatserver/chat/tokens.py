"""JWT access and refresh tokens, signed with SECRET_KEY (HS256)."""

import uuid
from datetime import timedelta

import jwt
from django.conf import settings
from django.utils import timezone

from .conf import option

ALGORITHM = "HS256"
ACCESS = "access"
REFRESH = "refresh"


class InvalidToken(Exception):
    """The token is malformed, badly signed, expired or of the wrong type."""


def _encode(user_id, token_type, lifetime_seconds):
    now = timezone.now()
    claims = {
        "sub": str(user_id),
        "type": token_type,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=lifetime_seconds)).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.SECRET_KEY, algorithm=ALGORITHM)


def issue_access_token(user_id):
    return _encode(user_id, ACCESS, option("ACCESS_TOKEN_LIFETIME"))


def issue_token_pair(user_id):
    return {
        "access": issue_access_token(user_id),
        "refresh": _encode(user_id, REFRESH, option("REFRESH_TOKEN_LIFETIME")),
    }


def user_id_from_token(token, expected_type=ACCESS):
    """The user id a valid token names; raises InvalidToken otherwise."""
    try:
        claims = jwt.decode(
            token,
            settings.SECRET_KEY,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub", "type"]},
        )
    except jwt.PyJWTError as error:
        raise InvalidToken(str(error)) from None
    if claims.get("type") != expected_type:
        raise InvalidToken(f"expected a {expected_type} token")
    try:
        return int(claims["sub"])
    except (TypeError, ValueError):
        raise InvalidToken("malformed subject") from None
