"""Development defaults: run with nothing installed but the package.

SQLite in the state directory and the in-process channel layer, unless ``REDIS_URL`` or
``DATABASE_URL`` say otherwise (the test suite runs the daemon on a real Redis this way).
With ``DEBUG=0`` these settings are held to the production checks.
"""

import os

from .base import *  # noqa: F403
from .base import STATE_DIR, allowed_hosts
from .environment import (
    DEVELOPMENT_SECRET_KEY,
    caches,
    channel_layers,
    check_production,
    databases,
    env_flag,
)

# The daemon refuses to serve these settings on a non-loopback address unless told it is meant.
DEVELOPMENT_SETTINGS = True
DEBUG = env_flag("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY") or DEVELOPMENT_SECRET_KEY
ALLOWED_HOSTS = allowed_hosts(["localhost", "127.0.0.1", "[::1]"])
REDIS_URL = os.environ.get("REDIS_URL", "")
# POST /api/signup/ and the web client's "Sign up": open in development.
ALLOW_SIGNUP = env_flag("CHATSERVER_ALLOW_SIGNUP", True)

DATABASES = databases(os.environ.get("DATABASE_URL"), STATE_DIR / "db.sqlite3")
CHANNEL_LAYERS = channel_layers(REDIS_URL)
CACHES = caches(REDIS_URL)

if not DEBUG:
    check_production(
        secret_key=os.environ.get("SECRET_KEY", ""),
        allowed_hosts=ALLOWED_HOSTS,
        redis_url=REDIS_URL,
        debug=DEBUG,
    )
