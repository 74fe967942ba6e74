"""HTTP token endpoints: ``POST /api/token/`` and ``POST /api/token/refresh/``.

Both take JSON or form bodies. Credentials are checked with Django's ``authenticate`` so every
configured backend applies; failures answer 401 with a JSON error, never a traceback, and too
many of them 429 (login_throttle.py).
"""

import json

from django.contrib.auth import authenticate, get_user_model
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .login_throttle import forget_failures
from .tokens import REFRESH, InvalidToken, issue_access_token, issue_token_pair, user_id_from_token


def _body(request):
    if request.content_type == "application/json":
        try:
            payload = json.loads(request.body or b"{}")
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None
    return request.POST


def _error(status, detail):
    return JsonResponse({"detail": detail}, status=status)


@csrf_exempt
@require_POST
def obtain_token(request):
    body = _body(request)
    if body is None:
        return _error(400, "Body must be a JSON object.")
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return _error(400, "username and password are required strings.")
    user = authenticate(request, username=username, password=password)
    if user is None or not user.is_active:
        return _error(401, "Invalid credentials.")  # counted by login_throttle
    forget_failures(username)
    return JsonResponse(issue_token_pair(user.pk))


@csrf_exempt
@require_POST
def refresh_token(request):
    body = _body(request)
    if body is None:
        return _error(400, "Body must be a JSON object.")
    token = body.get("refresh")
    if not isinstance(token, str):
        return _error(400, "refresh is a required string.")
    try:
        user_id = user_id_from_token(token, expected_type=REFRESH)
    except InvalidToken:
        return _error(401, "Invalid or expired refresh token.")
    if not get_user_model().objects.filter(pk=user_id, is_active=True).exists():
        return _error(401, "Invalid or expired refresh token.")
    return JsonResponse({"access": issue_access_token(user_id)})
