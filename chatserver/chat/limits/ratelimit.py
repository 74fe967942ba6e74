"""Per-user token buckets, one per event class, shared by every socket of the user on every daemon.

Limits come from the ``RATE_LIMITS`` option (refill ``rate`` per second up to ``burst``). A bucket
belongs to the user, not to a connection: closing a socket and opening a new one leaves it as it
was. With ``REDIS_URL`` set the buckets live in Redis, checked and spent by one Lua script (at
most one round trip per client frame; concurrent frames share one, and a fast sender's tokens
come a few at a time, see RedisBuckets), so all daemons behind nginx spend from the same budget.
Without Redis they live in this process.

Either way a bucket is forgotten once it would be full again (Redis key expiry, or a sweep in
the process): an idle user costs nothing, and forgetting a full bucket changes no answer.

Redis down must not stop the chat: a failed check is answered from this process's buckets
(logged once per outage), and Redis is tried again after ``REDIS_RETRY_SECONDS``. Meanwhile the
limits hold per process instead of across daemons.
"""

import asyncio
import logging
import math
import time

import redis.asyncio

from ..conf import DEFAULTS, option
from ..storage.call_queue import HOT_PATH_LIMIT, Batcher

logger = logging.getLogger(__name__)

KEY_PREFIX = "chatserver:ratelimit:"
REDIS_RETRY_SECONDS = 5.0
REDIS_TIMEOUT_SECONDS = 1.0

# Takes up to ARGV[3i] tokens from each bucket KEYS[i] (ARGV[3i-2]: rate, ARGV[3i-1]: burst), in
# order (a key may come twice), and returns how many each got. Redis' own clock, so the daemons'
# clocks need not agree. A key expires when its bucket would be full again.
TAKE_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local granted = {}
for i, key in ipairs(KEYS) do
    local rate, burst = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1])
    local want = tonumber(ARGV[3 * i])
    local state = redis.call('HMGET', key, 't', 's')
    local tokens, stamp = tonumber(state[1]), tonumber(state[2])
    if tokens == nil or stamp == nil then
        tokens = burst
    else
        tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
    end
    granted[i] = math.max(0, math.min(want, math.floor(tokens)))
    tokens = tokens - granted[i]
    redis.call('HSET', key, 't', string.format('%.6f', tokens), 's', string.format('%.6f', now))
    if rate > 0 then
        redis.call('PEXPIRE', key, math.ceil((burst - tokens) / rate * 1000) + 1)
    end
end
return granted
"""


def full_after(rate, burst, tokens):
    """Seconds until a bucket holding ``tokens`` is full again."""
    return (burst - tokens) / rate if rate > 0 else math.inf


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate, burst, now):
        self.rate, self.burst = float(rate), float(burst)
        self.tokens, self.stamp = float(burst), now

    def take(self, now):
        self.refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def refill(self, now):
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now

    def full_at(self):
        return self.stamp + full_after(self.rate, self.burst, self.tokens)


class LocalBuckets:
    """Buckets in this process, dropped once full again (swept at most every ``sweep_every``)."""

    def __init__(self, clock=time.monotonic, sweep_every=60.0):
        self.clock = clock
        self.sweep_every = sweep_every
        self.buckets = {}  # (user id, event class) -> TokenBucket
        self.next_sweep = clock() + sweep_every

    def take(self, user_id, event_class, rate, burst):
        now = self.clock()
        if now >= self.next_sweep:
            self.sweep(now)
        bucket = self.buckets.get((user_id, event_class))
        if bucket is None:
            bucket = self.buckets[(user_id, event_class)] = TokenBucket(rate, burst, now)
        return bucket.take(now)

    def sweep(self, now):
        self.buckets = {key: b for key, b in self.buckets.items() if now < b.full_at()}
        self.next_sweep = now + self.sweep_every


class Lease:
    """Tokens this process took from a Redis bucket ahead of use, spendable until ``expires``."""

    __slots__ = ("tokens", "expires", "size")

    def __init__(self, tokens, expires, size):
        self.tokens, self.expires, self.size = tokens, expires, size


class RedisBuckets:
    """Buckets in Redis, one hash per user and class, spent by TAKE_SCRIPT.

    A user who sends faster than one Redis round trip per frame would pay for (a flood, a
    pipelining client) gets tokens a few at a time: each lease used up within LEASE_SECONDS
    doubles the next one, up to a quarter of the burst (MAX_LEASE at most), so most of such a
    user's frames are checked here without a round trip. Tokens left in a lease when it expires
    are dropped, never given back: a lease can make the limit stricter, never looser. A user at
    an ordinary pace takes one token per frame, as without leases.

    Checks made while a script call is in flight go together in the next call (a Batcher), so
    a process holds one Redis connection per event loop. redis.asyncio clients belong to the
    event loop that made them: one client per loop.
    """

    LEASE_SECONDS = 1.0
    MAX_LEASE = 16

    def __init__(self, url, clock=time.monotonic, sweep_every=60.0):
        self.url = url
        self.clock = clock
        self.leases = {}  # Redis key -> Lease
        self.sweep_every = sweep_every
        self.next_sweep = clock() + sweep_every
        self._client = self._script = self._loop = None
        self._batcher = Batcher(self._take_batch, limit=HOT_PATH_LIMIT)

    def _bound(self):
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # No socket_timeout: redis-py would run every write in a task of its own for it;
            # one timeout around each script call (_take_batch) bounds it instead.
            self._client = redis.asyncio.Redis.from_url(
                self.url, socket_timeout=None, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
            )
            self._script = self._client.register_script(TAKE_SCRIPT)
            self._loop = loop
        return self._script

    async def take(self, user_id, event_class, rate, burst):
        key = f"{KEY_PREFIX}{user_id}:{event_class}"
        now = self.clock()
        if now >= self.next_sweep:
            self.leases = {k: lease for k, lease in self.leases.items() if now < lease.expires}
            self.next_sweep = now + self.sweep_every
        lease = self.leases.get(key)
        if lease is not None and now < lease.expires:
            if lease.tokens >= 1:
                lease.tokens -= 1
                return True
            size = min(lease.size * 2, self.MAX_LEASE, max(1, int(burst // 4)))  # used up: hot
        else:
            size = 1
        granted = await self._batcher.submit((key, rate, burst, size))
        if granted == 0:
            self.leases.pop(key, None)  # empty: tokens come back one at a time
            return False
        now = self.clock()
        lease = self.leases.get(key)
        if lease is not None and now < lease.expires:  # also topped up by a concurrent check
            lease.tokens += granted - 1
            lease.size = max(lease.size, size)
            lease.expires = now + self.LEASE_SECONDS
        else:
            self.leases[key] = Lease(granted - 1, now + self.LEASE_SECONDS, size)
        return True

    async def _take_batch(self, items):
        script = self._bound()
        args = [number for _, rate, burst, want in items for number in (rate, burst, want)]
        async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):  # a stalled Redis must not wedge sends
            granted = await script(keys=[item[0] for item in items], args=args)
        return [int(count) for count in granted]

    async def close(self):
        if self._client is not None:
            await self._client.aclose()
        self._client = self._script = self._loop = None


class RateLimiter:
    def __init__(self, limits=None, clock=time.monotonic, redis_url=None):
        """``limits``: a callable returning the RATE_LIMITS mapping. ``redis_url``: None reads
        the REDIS_URL setting on first use; "" keeps the buckets in this process."""
        self._limits = limits
        self.clock = clock
        self.local = LocalBuckets(clock)
        self._redis_url = redis_url
        self._redis = None
        self._redis_down_until = None  # clock value; None while Redis answers

    async def allow(self, user_id, event_class):
        """Spend one token of the user's bucket for this class; False when it is empty.

        A class configured as ``None`` is not limited (a gateway in front limits it, or the
        bench measures what the limiter costs): no bucket, no Redis call."""
        limits = self.limits()
        limit = (
            limits[event_class] if event_class in limits else DEFAULTS["RATE_LIMITS"][event_class]
        )
        if limit is None:
            return True
        rate, burst = float(limit["rate"]), float(limit["burst"])
        redis_buckets = self.redis_buckets()
        if redis_buckets is not None and not self._redis_resting():
            try:
                allowed = await redis_buckets.take(user_id, event_class, rate, burst)
            except Exception as error:  # noqa: BLE001 - any Redis failure: answer locally
                self._redis_failed(error)
            else:
                if self._redis_down_until is not None:
                    logger.warning("Rate limits are shared through Redis again.")
                    self._redis_down_until = None
                return allowed
        return self.local.take(user_id, event_class, rate, burst)

    def redis_buckets(self):
        if self._redis is None:
            url = self._redis_url
            if url is None:
                from django.conf import settings

                url = getattr(settings, "REDIS_URL", "") or ""
            self._redis = RedisBuckets(url, self.clock) if url else False
        return self._redis or None

    def _redis_resting(self):
        return self._redis_down_until is not None and self.clock() < self._redis_down_until

    def _redis_failed(self, error):
        if self._redis_down_until is None:
            logger.warning(
                "Rate limits: Redis failed (%s); using this process's buckets, retrying in %gs.",
                error,
                REDIS_RETRY_SECONDS,
            )
        self._redis_down_until = self.clock() + REDIS_RETRY_SECONDS

    def limits(self):
        return self._limits() if self._limits is not None else option("RATE_LIMITS")

    def reset(self):
        """Forget every bucket of this process and the Redis client (tests)."""
        self.local = LocalBuckets(self.clock)
        self._redis = None
        self._redis_down_until = None


limiter = RateLimiter()
