"""Settings of the tiny project that serves django-realtime-chat-messaging for the bench.

As the package's README sets it up (its app, guardian, polymorphic, Channels), with the bench's
Redis for the channel layer and the cache and the bench's PostgreSQL. Runs only in the separate
``bench/.venv-ref`` so the package's dependencies never mix with ours.
"""

import os

SECRET_KEY = os.environ["SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]
REDIS_URL = os.environ["REDIS_URL"]

INSTALLED_APPS = [
    "daphne",
    "channels",
    "django.contrib.admin",
    "django.contrib.auth",
    "polymorphic",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "guardian",
    "realtime_chat_messaging",
]
MIDDLEWARE = []
ROOT_URLCONF = "refbench.urls"
ASGI_APPLICATION = "refbench.asgi.application"
AUTHENTICATION_BACKENDS = (
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
)
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"

if os.environ.get("REF_PG_HOST"):
    # Django's default CONN_MAX_AGE (0) as the package documents no other: a connection per call.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ["REF_PG_HOST"],
            "NAME": os.environ.get("REF_PG_DB", "refbench"),
            "USER": "postgres",
            "CONN_MAX_AGE": int(os.environ.get("REF_CONN_MAX_AGE", "0")),
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("REF_SQLITE", "/tmp/refbench.sqlite3"),
        }
    }

# redis-py 8 defaults to a 5 s socket timeout that kills channels-redis' 5 s BZPOPMIN: disabled,
# exactly as for chatserver, so idle sockets survive.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": None, "max_connections": 1000}],
            "capacity": 1000,
            "expiry": 60,
        },
    }
}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "refbench",
    }
}
REALTIME_CHAT_MESSAGING = {
    "INACTIVITY_THRESHOLD": 60,
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
