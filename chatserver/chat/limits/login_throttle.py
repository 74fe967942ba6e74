"""Password guessing, throttled before any password is hashed.

Checking a password costs about a second of CPU (Django's PBKDF2), so a few concurrent wrong
guesses used to stall real logins, and nothing stopped a guesser. Failed logins are counted per
username and per client address in the cache (Redis in production, so every daemon shares the
counts); past the limit a login POST answers 429 with ``Retry-After`` until the window that
began with the first failure ends, without looking at the password. Both the token endpoint and
the admin's login go through here: failures are counted from Django's ``user_login_failed``
signal, which every ``authenticate()`` call sends.
"""

import hashlib
import math
import time

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.core.cache import cache
from django.http import HttpResponse, JsonResponse
from django.urls import reverse
from django.utils.decorators import sync_and_async_middleware

from ..conf import option
from ..request_bodies import form_or_json

PREFIX = "login-failures"


def _keys(kind, value):
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{PREFIX}:{kind}:{digest}", f"{PREFIX}:{kind}:{digest}:until"


def _subjects(username, address):
    """``(kind, cache keys, limit)`` for the username (case-insensitive) and the address."""
    limits = option("LOGIN_FAILURE_LIMITS")
    subjects = []
    if username:
        subjects.append((_keys("user", username.casefold()), limits["per_username"]))
    if address:
        subjects.append((_keys("address", address), limits["per_address"]))
    return subjects


def retry_after(username, address, now=None):
    """Seconds until a login for ``username`` from ``address`` may be tried again, or None."""
    now = time.time() if now is None else now
    wait = 0
    for (count_key, until_key), limit in _subjects(username, address):
        values = cache.get_many([count_key, until_key])
        if values.get(count_key, 0) >= limit:
            wait = max(wait, values.get(until_key, now) - now)
    return max(1, math.ceil(wait)) if wait > 0 else None


def record_failure(username, address, now=None):
    """Count one failed login for both; the window starts with a subject's first failure."""
    now = time.time() if now is None else now
    window = option("LOGIN_FAILURE_LIMITS")["window"]
    for (count_key, until_key), _ in _subjects(username, address):
        if cache.add(until_key, now + window, window):
            cache.set(count_key, 0, window)
        try:
            cache.incr(count_key)
        except ValueError:  # expired between the two calls: a new window
            cache.set(count_key, 1, window)
            cache.set(until_key, now + window, window)


def forget_failures(username):
    """A successful login clears the username's count (not the address's)."""
    if username:
        cache.delete_many(list(_keys("user", username.casefold())))


def client_address(request):
    # Daphne puts the X-Forwarded-For address into the scope with --proxy-headers, and Django's
    # ASGI handler into REMOTE_ADDR.
    return request.META.get("REMOTE_ADDR") or ""


def on_login_failed(sender, credentials, request=None, **kwargs):
    """``user_login_failed`` receiver: Django passes the credentials without the password."""
    username = credentials.get("username")
    if isinstance(username, str):
        record_failure(username, client_address(request) if request is not None else "")


def on_logged_in(sender, request, user, **kwargs):
    forget_failures(user.get_username())


# -- the middleware ------------------------------------------------------------------------


def _login_paths():
    return {reverse("token_obtain"), reverse("admin:login")}


def _username(request):
    body = form_or_json(request)
    value = None if body is None else body.get("username")
    return value if isinstance(value, str) else None


def _refusal(request, seconds):
    detail = f"Too many failed logins; try again in {seconds} seconds."
    if request.path == reverse("token_obtain"):
        response = JsonResponse({"detail": detail}, status=429)
    else:
        response = HttpResponse(detail, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(seconds)
    return response


def _check(request):
    seconds = retry_after(_username(request), client_address(request))
    return None if seconds is None else _refusal(request, seconds)


def _is_login(request):
    return request.method == "POST" and request.path in _login_paths()


@sync_and_async_middleware
def login_throttle_middleware(get_response):
    """Answer 429 to a login POST past the failure limits, before its view hashes anything."""
    if iscoroutinefunction(get_response):
        check = sync_to_async(_check)

        async def middleware(request):
            if _is_login(request):
                refused = await check(request)
                if refused is not None:
                    return refused
            return await get_response(request)

    else:

        def middleware(request):
            if _is_login(request):
                refused = _check(request)
                if refused is not None:
                    return refused
            return get_response(request)

    return middleware
