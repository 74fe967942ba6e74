"""chatserver's settings for the bench: production (from the environment) with bench limits.

The same module serves (a) the daemon (``--settings bench.settings_bench``), (b) ``daphne`` and
(c) ``uvicorn``. It is ``chatserver.settings.production`` unchanged except for the per-user rate
limits, which would otherwise cap a single sender at 5 messages/s, and the per-user socket cap.
``CHATBENCH_WITHOUT`` (comma-separated ``ratelimit``, ``presence``) switches those features off.
Without ``REDIS_URL`` (smoke mode) it is the development settings (SQLite, in-process layer)
with DEBUG off.
"""

import os

if os.environ.get("REDIS_URL"):
    from chatserver.settings.production import *  # noqa: F403
    from chatserver.settings.production import REALTIME_CHAT_MESSAGING
else:
    os.environ["DEBUG"] = "1"  # development settings check production rules when DEBUG is off
    from chatserver.settings.development import *  # noqa: F403
    from chatserver.settings.development import REALTIME_CHAT_MESSAGING

    DEBUG = False

from chatserver.chat.conf import DEFAULTS  # noqa: E402

BENCH_RATE = {"rate": 1e6, "burst": 1_000_000}
REALTIME_CHAT_MESSAGING = {
    **REALTIME_CHAT_MESSAGING,
    "RATE_LIMITS": {name: dict(BENCH_RATE) for name in DEFAULTS["RATE_LIMITS"]},
    # Load clients open many sockets per user (the idle and storm scenarios).
    "MAX_SOCKETS_PER_USER": 1_000_000,
}
# The daemon-bare server: the same daemon with the rate limiter and presence switched off, so
# one run shows what those two cost (issues 13 and 15 allow them 5% of fan-out).
WITHOUT = set(filter(None, os.environ.get("CHATBENCH_WITHOUT", "").split(",")))
if "ratelimit" in WITHOUT:
    REALTIME_CHAT_MESSAGING["RATE_LIMITS"] = {name: None for name in DEFAULTS["RATE_LIMITS"]}
if "presence" in WITHOUT:
    REALTIME_CHAT_MESSAGING["ENABLE_PRESENCE"] = False
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("CHATSERVER_LOG_LEVEL", "WARNING")},
}
