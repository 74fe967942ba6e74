"""HTTP token endpoints: ``POST /api/token/``, ``/api/token/refresh/`` and ``/api/token/revoke/``.

Both take JSON or form bodies. Credentials are checked with Django's ``authenticate`` so every
configured backend applies; failures answer 401 with a JSON error, never a traceback, and too
many of them 429 (login_throttle.py).
"""

from django.contrib.auth import authenticate
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ..limits.login_throttle import forget_failures
from ..request_bodies import form_or_json
from .tokens import InvalidToken, issue_token_pair, revoke, rotate


def _error(status, detail):
    return JsonResponse({"detail": detail}, status=status)


@csrf_exempt
@require_POST
def obtain_token(request):
    body = form_or_json(request)
    if body is None:
        return _error(400, "Body must be a JSON object.")
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return _error(400, "username and password are required strings.")
    user = authenticate(request, username=username, password=password)
    if user is None or not user.is_active:
        return _error(401, "Invalid credentials.")  # counted by login_throttle
    forget_failures(username)
    return JsonResponse(issue_token_pair(user))


def _refresh_from(request):
    """The ``refresh`` string of the body, or an error response."""
    body = form_or_json(request)
    if body is None:
        return None, _error(400, "Body must be a JSON object.")
    token = body.get("refresh")
    if not isinstance(token, str):
        return None, _error(400, "refresh is a required string.")
    return token, None


@csrf_exempt
@require_POST
def refresh_token(request):
    """A new access *and* refresh token; the refresh token sent is used up (rotation)."""
    token, error = _refresh_from(request)
    if error is not None:
        return error
    try:
        return JsonResponse(rotate(token))
    except InvalidToken:
        return _error(401, "Invalid or expired refresh token.")


@csrf_exempt
@require_POST
def revoke_token(request):
    """Log out: the refresh token's family is revoked and its sockets close (4001)."""
    token, error = _refresh_from(request)
    if error is not None:
        return error
    try:
        revoke(token)
    except InvalidToken:
        return _error(401, "Invalid or expired refresh token.")
    return HttpResponse(status=204)
