"""Production: everything comes from the environment, as the deployment guide lists it.

``SECRET_KEY``, ``ALLOWED_HOSTS`` (comma-separated), ``REDIS_URL`` (channel layer and cache),
``DATABASE_URL`` (PostgreSQL; SQLite only if you insist) and ``DEBUG`` (off). Anything missing
fails at import, so the daemon refuses to start instead of failing at the first request.
"""

import os

from .base import *  # noqa: F403
from .base import STATE_DIR, allowed_hosts
from .environment import caches, channel_layers, check_production, databases, env_flag

DEBUG = env_flag("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
ALLOWED_HOSTS = allowed_hosts([])
REDIS_URL = os.environ.get("REDIS_URL", "")

check_production(
    secret_key=SECRET_KEY, allowed_hosts=ALLOWED_HOSTS, redis_url=REDIS_URL, debug=DEBUG
)

DATABASES = databases(os.environ.get("DATABASE_URL"), STATE_DIR / "db.sqlite3")
CHANNEL_LAYERS = channel_layers(REDIS_URL)
CACHES = caches(REDIS_URL)

SESSION_COOKIE_SECURE = env_flag("CHATSERVER_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
