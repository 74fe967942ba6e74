"""Sign-ups per client address, counted in the shared cache like failed logins.

Each sign-up hashes a password (about a second of CPU) and creates a row, so an address gets
SIGNUP_LIMITS["per_address"] attempts (successful or not) per window; past that the endpoint
answers 429 with ``Retry-After`` before it hashes anything. The cache is Redis in production, so
every daemon shares the count.
"""

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache

PREFIX = "signups"
DEFAULT_LIMITS = {"per_address": 10, "window": 3600}


def limits():
    return {**DEFAULT_LIMITS, **getattr(settings, "SIGNUP_LIMITS", {})}


def _keys(address):
    digest = hashlib.sha256(address.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{PREFIX}:{digest}", f"{PREFIX}:{digest}:until"


def attempt(address, now=None):
    """Count one attempt from ``address``: None when allowed, else seconds to wait."""
    now = time.time() if now is None else now
    config = limits()
    window = config["window"]
    count_key, until_key = _keys(address)
    if cache.add(until_key, now + window, window):
        cache.set(count_key, 0, window)
    values = cache.get_many([count_key, until_key])
    if values.get(count_key, 0) >= config["per_address"]:
        return max(1, math.ceil(values.get(until_key, now + 1) - now))
    try:
        cache.incr(count_key)
    except ValueError:  # expired between the calls: a new window starts with this attempt
        cache.set(count_key, 1, window)
        cache.set(until_key, now + window, window)
    return None
