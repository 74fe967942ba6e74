"""JWT access and refresh tokens, signed with SECRET_KEY (HS256), and what revokes them.

Every token names its user (``sub``) and carries a fingerprint of the user's password hash
(``pwd``): changing the password changes the fingerprint, so every token issued before stops
working at once, on every daemon, with no list to keep. Tokens from a login also name their
family (``fid``, a ``TokenFamily`` row): refresh tokens rotate on use, a reused one revokes the
family, and a logout revokes it; access tokens of a revoked family no longer connect.
Deactivated users' tokens fail the ``is_active`` check wherever a token is read.
"""

import uuid
from datetime import timedelta

import jwt
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from ..conf import option

ALGORITHM = "HS256"
ACCESS = "access"
REFRESH = "refresh"


class InvalidToken(Exception):
    """The token is malformed, badly signed, expired, revoked or of the wrong type."""


def password_fingerprint(user):
    """Changes whenever the password does (an HMAC of its hash: reveals nothing of it)."""
    return salted_hmac("chatserver.tokens.password", user.password).hexdigest()[:24]


def fingerprint_matches(user, claims):
    return constant_time_compare(password_fingerprint(user), claims.get("pwd", ""))


def _encode(user, token_type, lifetime_seconds, family=None, jti=None):
    now = timezone.now()
    claims = {
        "sub": str(user.pk),
        "type": token_type,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=lifetime_seconds)).timestamp()),
        "jti": jti or uuid.uuid4().hex,
        "pwd": password_fingerprint(user),
    }
    if family is not None:
        claims["fid"] = str(family)
    return jwt.encode(claims, settings.SECRET_KEY, algorithm=ALGORITHM)


def issue_access_token(user, family=None):
    """An access token for ``user`` (a user object: its password hash is fingerprinted)."""
    return _encode(user, ACCESS, option("ACCESS_TOKEN_LIFETIME"), family)


def _pair(user, family_id, jti):
    return {
        "access": issue_access_token(user, family_id),
        "refresh": _encode(user, REFRESH, option("REFRESH_TOKEN_LIFETIME"), family_id, jti),
    }


def issue_token_pair(user):
    """A new login: a token family and its first access and refresh tokens."""
    from ..models import TokenFamily

    jti = uuid.uuid4().hex
    family = TokenFamily.objects.create(id=uuid.uuid4(), user=user, current_jti=jti)
    return _pair(user, family.pk, jti)


def decode(token, expected_type=ACCESS):
    """The claims of a well-signed, unexpired token of ``expected_type``; else InvalidToken.
    Whether its user, password and family still hold is for the caller to check."""
    try:
        claims = jwt.decode(
            token,
            settings.SECRET_KEY,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "sub", "type", "pwd"]},
        )
    except jwt.PyJWTError as error:
        raise InvalidToken(str(error)) from None
    if claims.get("type") != expected_type:
        raise InvalidToken(f"expected a {expected_type} token")
    subject = claims["sub"]
    if not isinstance(subject, str) or not (subject.isascii() and subject.isdigit()):
        raise InvalidToken("malformed subject")
    claims["user_id"] = int(subject)
    return claims


def user_id_from_token(token, expected_type=ACCESS):
    """The user id a well-signed, unexpired token names (no revocation check)."""
    return decode(token, expected_type)["user_id"]


def _family_for_update(claims):
    from ..models import TokenFamily

    try:
        family_id = uuid.UUID(str(claims.get("fid")))
    except ValueError:
        raise InvalidToken("no token family") from None
    family = (
        TokenFamily.objects.select_for_update()
        .select_related("user")
        .filter(pk=family_id, user_id=claims["user_id"])
        .first()
    )
    if family is None or family.revoked_at is not None:
        raise InvalidToken("revoked")
    return family


def rotate(refresh_token):
    """A new token pair for a refresh token, which is used up. A refresh token used before
    revokes its whole family (someone else holds a copy) and raises InvalidToken; so do a
    changed password and a deactivated user."""
    claims = decode(refresh_token, REFRESH)
    reused = None
    with transaction.atomic():
        family = _family_for_update(claims)
        user = family.user
        if not user.is_active or not fingerprint_matches(user, claims):
            raise InvalidToken("credentials changed")
        if not constant_time_compare(family.current_jti, claims.get("jti", "")):
            family.revoked_at = timezone.now()
            family.save(update_fields=["revoked_at"])
            reused = family
        else:
            family.current_jti = uuid.uuid4().hex
            family.rotated_at = timezone.now()
            family.save(update_fields=["current_jti", "rotated_at"])
            return _pair(user, family.pk, family.current_jti)
    from .revocation import close_family_sockets

    close_family_sockets(reused.user_id, reused.pk)
    raise InvalidToken("refresh token reused: its family is revoked")


def revoke(refresh_token):
    """Log out: revoke the family of a refresh token (its access tokens stop connecting and
    its sockets close). Raises InvalidToken for a token that is not valid anyway."""
    claims = decode(refresh_token, REFRESH)
    with transaction.atomic():
        family = _family_for_update(claims)
        family.revoked_at = timezone.now()
        family.save(update_fields=["revoked_at"])
    from .revocation import close_family_sockets

    close_family_sockets(family.user_id, family.pk)
