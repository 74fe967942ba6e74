"""Read ``REALTIME_CHAT_MESSAGING`` options with their defaults in one place."""

from django.conf import settings

DEFAULTS = {
    "INACTIVITY_THRESHOLD": 60,
    "SESSION_RETENTION_HOURS": 24,
    # Soft delete keeps the row (threads stay intact) but drops content from every payload.
    "MESSAGE_SOFT_DELETE": True,
    # Send chat.notifications (unread summary) on connect.
    "ENABLE_NOTIFICATION": True,
    "ACCESS_TOKEN_LIFETIME": 15 * 60,
    "REFRESH_TOKEN_LIFETIME": 7 * 24 * 3600,
    # Largest text frame the consumer reads; larger ones close the socket with 1009. The daemon
    # also sets Daphne's own limit, this one holds under any ASGI server.
    "MAX_FRAME_BYTES": 64 * 1024,
    # Bytes the daemon holds unsent for one WebSocket (a client that stops reading); past it
    # the socket is closed with 1013 and what it held is dropped: the client resumes by seq.
    "MAX_SEND_BUFFER_BYTES": 4 * 1024 * 1024,
    # Bytes of messages or events in one room.messages or session.resume answer, roughly; a
    # longer answer stops early with has_more and the client pages on.
    "MAX_ANSWER_BYTES": 1024 * 1024,
    # Seconds between re-assertions of this process's subscription in the channel layer, so a
    # Redis restart or the layer's group expiry never silently stops broadcasts.
    "GROUP_REFRESH_INTERVAL": 30,
    # message.sends one connection may have stored ahead of their answers; past it the
    # consumer waits for them before it reads the next frame.
    "MAX_PIPELINED_SENDS": 100,
    # Sockets one user may hold open on all daemons together; the newest past it closes (4409).
    "MAX_SOCKETS_PER_USER": 20,
    "MAX_MESSAGE_LENGTH": 4000,
    # Distinct emoji on one message; a new one past it is refused (4005), existing ones can
    # still be added by more people.
    "MAX_REACTIONS_PER_MESSAGE": 20,
    "MAX_NAME_LENGTH": 100,
    "MAX_DESCRIPTION_LENGTH": 500,
    "DEFAULT_MEMBER_LIMIT": 100,
    "MAX_MEMBER_LIMIT": 1000,
    # Page sizes: room.messages and room.list (limit <= 100), session.resume per room.
    "PAGE_SIZE": 50,
    "RESUME_MAX_EVENTS": 200,
    # Seconds a replayed event's frame serves later replays (a reconnect storm's); a renamed or
    # deleted author shows that much late in them. 0 builds every replay anew.
    "REPLAY_CACHE_SECONDS": 2.0,
    "RESUME_MAX_ROOMS": 100,
    "NOTIFICATION_MAX_ROOMS": 50,
    # Presence (presence.* events and hubs); off, those events answer 4007 and sockets keep no
    # presence state.
    "ENABLE_PRESENCE": True,
    # Presence: seconds without a frame or heartbeat before a user shows as away; seconds
    # between two presence.dispatch frames to one subscriber (changes are batched meanwhile);
    # users one presence.subscribe may watch.
    "PRESENCE_AWAY_AFTER": 300,
    "PRESENCE_FLUSH_INTERVAL": 1.0,
    "PRESENCE_MAX_USERS": 1000,
    # Failed logins (token endpoint and admin) per username and per client address within
    # ``window`` seconds of the first; past them a login answers 429 without checking the password.
    "LOGIN_FAILURE_LIMITS": {"per_username": 5, "per_address": 20, "window": 15 * 60},
    # Token buckets per user and event class: refill per second, burst capacity. Shared by every
    # daemon through Redis (REDIS_URL), kept across reconnects (chat/limits/ratelimit.py).
    "RATE_LIMITS": {
        "send": {"rate": 5.0, "burst": 20},
        "typing": {"rate": 2.0, "burst": 10},
        "read": {"rate": 20.0, "burst": 60},
        "manage": {"rate": 2.0, "burst": 10},
        # New sockets per user, and per client address (before authentication, so a flood of
        # handshakes costs no database work); past them the socket is closed with 4429.
        "connect": {"rate": 0.5, "burst": 20},
        "connect_address": {"rate": 5.0, "burst": 100},
    },
}


def option(name):
    """The configured value of one option, or its default."""
    configured = getattr(settings, "REALTIME_CHAT_MESSAGING", {}) or {}
    if name in configured:
        return configured[name]
    return DEFAULTS[name]
