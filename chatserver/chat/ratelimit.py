"""Per-user token buckets, one per event class, shared by the user's connections in a process.

Limits come from the ``RATE_LIMITS`` option (refill ``rate`` per second up to ``burst``). State
lives in the process: with several daemon processes a user's budget is per process. Buckets are
dropped when the user's last connection in this process closes, so memory follows live users.
"""

import time

from .conf import option


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate, burst, now):
        self.rate, self.burst = float(rate), float(burst)
        self.tokens, self.stamp = float(burst), now

    def take(self, now):
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class RateLimiter:
    def __init__(self, limits=None, clock=time.monotonic):
        """``limits``: a callable returning the RATE_LIMITS mapping, read as a bucket starts."""
        self._limits = limits
        self.clock = clock
        self._users = {}  # user id -> [connection count, {event class: TokenBucket}]

    def attach(self, user_id):
        self._users.setdefault(user_id, [0, {}])[0] += 1

    def detach(self, user_id):
        entry = self._users.get(user_id)
        if entry is not None:
            entry[0] -= 1
            if entry[0] <= 0:
                del self._users[user_id]

    def allow(self, user_id, event_class):
        """Spend one token of the user's bucket for this class; False when it is empty."""
        now = self.clock()
        entry = self._users.setdefault(user_id, [0, {}])
        bucket = entry[1].get(event_class)
        if bucket is None:
            limit = self.limits()[event_class]
            bucket = entry[1][event_class] = TokenBucket(limit["rate"], limit["burst"], now)
        return bucket.take(now)

    def limits(self):
        return self._limits() if self._limits is not None else option("RATE_LIMITS")


limiter = RateLimiter()
