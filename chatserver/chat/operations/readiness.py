"""Is this process ready for traffic? The database and Redis answer, and it is not draining.

One probe serves ``GET /readyz`` (health.py) and the daemon's ``READY=1`` to systemd, so both
mean the same thing. Each dependency gets ``timeout`` seconds. A database that hangs keeps its
worker thread: at most one database probe is in flight, later probes wait on it, so a hung
database cannot pile up threads.
"""

import asyncio

from asgiref.sync import sync_to_async
from django.conf import settings

DEFAULT_TIMEOUT = 2.0

_draining = False
_database_probe = None  # the in-flight database probe, shared by concurrent callers


def begin_draining():
    """From now on the process is not ready: it is shutting down."""
    global _draining
    _draining = True


def is_draining():
    return _draining


def _select_one():
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()  # a pool thread must not keep a connection per probe


async def check_database():
    global _database_probe
    if _database_probe is None or _database_probe.done():
        _database_probe = asyncio.ensure_future(
            sync_to_async(_select_one, thread_sensitive=False)()
        )
    await asyncio.shield(_database_probe)


async def check_redis():
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(
        settings.REDIS_URL, socket_timeout=DEFAULT_TIMEOUT, socket_connect_timeout=DEFAULT_TIMEOUT
    )
    try:
        await client.ping()
    finally:
        await client.aclose()


def dependencies():
    """The checks this configuration needs: Redis only when it is configured."""
    checks = {"database": check_database}
    if getattr(settings, "REDIS_URL", ""):
        checks["redis"] = check_redis
    return checks


async def probe(timeout=DEFAULT_TIMEOUT):
    """{name: None when it answered, else a one-line reason}, checked concurrently."""
    checks = dependencies()

    async def run(check):
        try:
            await asyncio.wait_for(check(), timeout)
        except TimeoutError:
            return f"no answer within {timeout:g} s"
        except Exception as error:
            return f"{type(error).__name__}: {error}".splitlines()[0]
        return None

    results = await asyncio.gather(*(run(check) for check in checks.values()))
    return dict(zip(checks, results, strict=True))


def failed(results):
    return [name for name, problem in results.items() if problem is not None]
