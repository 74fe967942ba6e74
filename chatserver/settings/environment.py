"""Turn environment variables into Django settings values.

Kept free of Django imports so both settings modules and the daemon's option parser can use it.
"""

import os
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_flag(name, default):
    """Read a boolean variable; anything but a yes/no word is a configuration error."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use 1/0, true/false, yes/no.")


def env_list(name, default=()):
    """Read a comma-separated list, dropping blanks."""
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_int(name, default):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None


def logging_config(level, access_log):
    """Django's LOGGING: stdlib records at ``level`` and up (CHATSERVER_LOG_LEVEL); the access
    lines (one per HTTP request and per WebSocket connected, rejected and disconnected) on or
    off whatever that level (CHATSERVER_ACCESS_LOG). Behind nginx, whose access log has every
    request, they can go: in a reconnect storm writing them was 6-7% of the daemon's time."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django.db.backends": {"level": "INFO"},
            "daphne": {"level": "INFO"},
            "chatserver.access": {"level": "INFO" if access_log else "WARNING"},
        },
    }


def state_dir(default="var"):
    """Where the SQLite database and the manhole host key live (CHATSERVER_STATE_DIR)."""
    return Path(os.environ.get("CHATSERVER_STATE_DIR") or default).resolve()


def redis_hosts(url):
    """One channels-redis host entry for ``url``.

    redis-py 8 defaults to a 5 s socket timeout, but channels-redis blocks in BZPOPMIN for 5 s,
    so idle sockets would die with 1011: the timeout is disabled. The pool bounds the connections a
    process opens to Redis (the rate limiter's and presence's calls run concurrently); it can be
    raised with CHATSERVER_REDIS_MAX_CONNECTIONS.
    """
    return [
        {
            "address": url,
            "socket_timeout": None,
            "socket_connect_timeout": 5,
            "health_check_interval": 30,
            "max_connections": env_int("CHATSERVER_REDIS_MAX_CONNECTIONS", 1000),
        }
    ]


def channel_layers(redis_url):
    """The channel layer: Redis when a URL is given, otherwise in-process (one daemon only).

    By default channels-redis' pub/sub layer: a group message is one PUBLISH that Redis pushes
    to each subscribed process, where the core layer pops every message with several round
    trips (which capped a process far below the pub/sub layer's rate). Its delivery is
    at-most-once; the per-room sequence numbers and ``session.resume`` make that safe.
    CHATSERVER_CHANNEL_LAYER=core selects the core layer (buffered per channel for ``expiry``).
    """
    if not redis_url:
        return {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    flavour = os.environ.get("CHATSERVER_CHANNEL_LAYER", "pubsub").strip().lower()
    backends = {
        "core": "channels_redis.core.RedisChannelLayer",
        "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    }
    if flavour not in backends:
        raise ImproperlyConfigured(
            f"CHATSERVER_CHANNEL_LAYER={flavour!r}: choose one of {', '.join(sorted(backends))}."
        )
    config = {"hosts": redis_hosts(redis_url)}
    if flavour == "core":
        config.update({"capacity": 1000, "expiry": 60, "group_expiry": 86400})
    return {"default": {"BACKEND": backends[flavour], "CONFIG": config}}


def caches(redis_url):
    if not redis_url:
        return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": "chatserver",
        }
    }


def databases(database_url, sqlite_path):
    """DATABASE_URL (PostgreSQL in production) or SQLite in the state directory."""
    if database_url:
        import dj_database_url

        # Persistent connections; no health-check ping per database call (Channels closes
        # unusable connections after errors, and the ping cost a round trip per message).
        config = dj_database_url.parse(database_url, conn_max_age=600, conn_health_checks=False)
    else:
        config = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(sqlite_path)}
        # Tests get a file too (one per test run): Django's default in-memory test database
        # uses shared-cache table locks, which fail concurrent writers instead of queueing them.
        test_name = f"chatserver-test-{os.getpid()}.sqlite3"
        config["TEST"] = {"NAME": str(Path(tempfile.gettempdir()) / test_name)}
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # A kept connection (opening one per database call cost a fifth of a connect), WAL so
        # readers never wait for the writer, IMMEDIATE so two writers queue on the lock instead
        # of failing on upgrade, and a generous busy timeout.
        config["CONN_MAX_AGE"] = 600
        config.setdefault("OPTIONS", {}).update(
            {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            }
        )
    return {"default": config}


# Published in this repository: it signs nothing that matters, anywhere.
DEVELOPMENT_SECRET_KEY = "development-only-insecure-key-change-me-0123456789"
MAKE_A_KEY = 'make one with: python3 -c "import secrets; print(secrets.token_urlsafe(50))"'
# A random URL-safe key of 32+ characters has far more; "aaaa...", "changeme" * 5 or a
# date-stamped word do not.
MIN_DISTINCT_KEY_CHARACTERS = 20


def secret_key_problem(secret_key):
    """Why ``secret_key`` must not sign tokens and sessions in production, or None."""
    if not secret_key:
        return f"SECRET_KEY is not set: {MAKE_A_KEY}."
    if secret_key == DEVELOPMENT_SECRET_KEY:
        return f"SECRET_KEY is the published development key: {MAKE_A_KEY}."
    if len(secret_key) < 32:
        return f"SECRET_KEY is shorter than 32 characters: {MAKE_A_KEY}."
    if len(set(secret_key)) < MIN_DISTINCT_KEY_CHARACTERS:
        return (
            f"SECRET_KEY has fewer than {MIN_DISTINCT_KEY_CHARACTERS} distinct characters, "
            f"so it is easy to guess: {MAKE_A_KEY}."
        )
    return None


def allowed_origins(raw_origins):
    """Validate ``ALLOWED_ORIGINS`` entries: full origins (scheme://host[:port]), each matched
    exactly, so a typo cannot silently widen the check to a pattern."""
    from urllib.parse import urlsplit

    origins = []
    for origin in raw_origins:
        parts = urlsplit(origin)
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            parts = None
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.hostname.startswith(".")
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username is not None
        ):
            raise ImproperlyConfigured(
                f"ALLOWED_ORIGINS entry {origin!r} is not an origin: write "
                "scheme://host[:port], e.g. https://chat.example.com."
            )
        origins.append(origin.rstrip("/").lower())
    return origins


def check_production(*, secret_key, allowed_hosts, redis_url, debug):
    """Refuse settings that would misbehave in production, with one sentence per problem."""
    problems = []
    if debug:
        problems.append("DEBUG must be off in production (unset DEBUG or set DEBUG=0).")
    key_problem = secret_key_problem(secret_key)
    if key_problem:
        problems.append(key_problem)
    if not allowed_hosts:
        problems.append(
            "ALLOWED_HOSTS is empty: every WebSocket handshake would be refused. "
            "List the host names you serve, comma-separated."
        )
    elif "*" in allowed_hosts:
        problems.append("ALLOWED_HOSTS must not contain '*' in production: list exact hosts.")
    if not redis_url:
        problems.append(
            "REDIS_URL is not set: production needs Redis for the channel layer and the cache."
        )
    if problems:
        raise ImproperlyConfigured("Production settings are incomplete: " + " ".join(problems))
