"""Production: everything comes from the environment, as the deployment guide lists it.

``SECRET_KEY``, ``ALLOWED_HOSTS`` (comma-separated), ``REDIS_URL`` (channel layer and cache),
``DATABASE_URL`` (PostgreSQL; SQLite only if you insist) and ``DEBUG`` (off). Anything missing
fails at import, so the daemon refuses to start instead of failing at the first request.
"""

import os

from .base import *  # noqa: F403
from .base import STATE_DIR, allowed_hosts
from .environment import (
    caches,
    channel_layers,
    check_production,
    databases,
    env_flag,
    env_int,
)

DEBUG = env_flag("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
ALLOWED_HOSTS = allowed_hosts([])
REDIS_URL = os.environ.get("REDIS_URL", "")
# POST /api/signup/ (self-service accounts): closed unless the operator opens it.
ALLOW_SIGNUP = env_flag("CHATSERVER_ALLOW_SIGNUP", False)

check_production(
    secret_key=SECRET_KEY, allowed_hosts=ALLOWED_HOSTS, redis_url=REDIS_URL, debug=DEBUG
)

DATABASES = databases(os.environ.get("DATABASE_URL"), STATE_DIR / "db.sqlite3")
CHANNEL_LAYERS = channel_layers(REDIS_URL)
CACHES = caches(REDIS_URL)

SESSION_COOKIE_SECURE = env_flag("CHATSERVER_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# nginx redirects port 80 already; this catches a request that reached the daemon over plain
# HTTP some other way. Off only where TLS ends somewhere that sets no X-Forwarded-Proto.
SECURE_SSL_REDIRECT = env_flag("CHATSERVER_SSL_REDIRECT", True)
# HTTP Strict Transport Security: browsers refuse plain HTTP to this host for that long. One
# year once HTTPS works; 0 turns the header off (e.g. while trying a certificate out).
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_flag("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_flag("SECURE_HSTS_PRELOAD", False)
# Preloading binds every subdomain of the registrable domain for good: the owner of that
# domain decides (SECURE_HSTS_PRELOAD=1), so `check --deploy` does not nag about it otherwise.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
