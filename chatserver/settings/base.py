"""Settings shared by development and production."""

import os

from .environment import (
    allowed_origins,
    env_flag,
    env_int,
    env_list,
    logging_config,
    state_dir,
)

STATE_DIR = state_dir()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "guardian",
    "chatserver.chat",
    "chatserver.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (the web client's and the admin's), compressed and cached, before anything
    # that would look at the session or the database (chatserver/web/static.py).
    "chatserver.web.static.StaticFilesMiddleware",
    "chatserver.chat.limits.login_throttle.login_throttle_middleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatserver.urls"
ASGI_APPLICATION = "chatserver.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

AUTHENTICATION_BACKENDS = (
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = os.environ.get("CHATSERVER_STATIC_ROOT") or str(STATE_DIR / "static")
# `chatserver collectstatic` writes gzip and Brotli copies next to each file; whitenoise serves
# them to clients that accept them. Names are not hashed (the web client's ES modules import each
# other by plain relative names), so files are cached briefly and revalidated by ETag.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_MAX_AGE = env_int("CHATSERVER_STATIC_MAX_AGE", 300)
WHITENOISE_USE_FINDERS = True  # uncollected files are served from source (uncompressed)

# WebSocket handshakes must come from a page of this site (cross-site WebSocket hijacking). By
# default the Origin's host is checked against ALLOWED_HOSTS, whatever its scheme and port; full
# origins here (scheme://host[:port], comma-separated in the environment) are enforced exactly.
ALLOWED_ORIGINS = allowed_origins(env_list("ALLOWED_ORIGINS", []))

# guardian: no anonymous user row is needed, the WebSocket refuses anonymous sockets anyway.
ANONYMOUS_USER_NAME = None

# Options of the chat application; keys as in django-realtime-chat-messaging.
REALTIME_CHAT_MESSAGING = {
    # Seconds without a session.heartbeat before the sweeper closes the socket (close 4408).
    "INACTIVITY_THRESHOLD": env_int("CHATSERVER_INACTIVITY_THRESHOLD", 60),
    # Hours a session row is kept after its last heartbeat before the reaper deletes it.
    "SESSION_RETENTION_HOURS": env_int("CHATSERVER_SESSION_RETENTION_HOURS", 24),
    "MESSAGE_SOFT_DELETE": True,
    "ENABLE_NOTIFICATION": True,
    "ENABLE_PRESENCE": True,
    # Access and refresh token lifetimes for the JWT endpoints, in seconds.
    "ACCESS_TOKEN_LIFETIME": env_int("CHATSERVER_ACCESS_TOKEN_LIFETIME", 15 * 60),
    "REFRESH_TOKEN_LIFETIME": env_int("CHATSERVER_REFRESH_TOKEN_LIFETIME", 7 * 24 * 3600),
}

LOGGING = logging_config(
    os.environ.get("CHATSERVER_LOG_LEVEL", "INFO"), env_flag("CHATSERVER_ACCESS_LOG", True)
)


def allowed_hosts(default):
    return env_list("ALLOWED_HOSTS", default)
