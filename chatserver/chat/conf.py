"""Read ``REALTIME_CHAT_MESSAGING`` options with their defaults in one place."""

from django.conf import settings

DEFAULTS = {
    "INACTIVITY_THRESHOLD": 60,
    "SESSION_RETENTION_HOURS": 24,
    "MESSAGE_SOFT_DELETE": True,
    "ENABLE_NOTIFICATION": True,
    "ACCESS_TOKEN_LIFETIME": 15 * 60,
    "REFRESH_TOKEN_LIFETIME": 7 * 24 * 3600,
}


def option(name):
    """The configured value of one option, or its default."""
    configured = getattr(settings, "REALTIME_CHAT_MESSAGING", {}) or {}
    if name in configured:
        return configured[name]
    return DEFAULTS[name]
