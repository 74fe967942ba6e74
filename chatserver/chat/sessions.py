"""Session bookkeeping shared by the consumer and the daemon's maintenance jobs.

Everything here is async and runs its ORM work through ``database_sync_to_async``, so callers on
the reactor thread (looping calls, the manhole) never block it. The housekeeping jobs first drop
the database thread's connection if it died (a PostgreSQL restart): a run after an outage works
instead of failing once on the dead connection.
"""

from datetime import timedelta

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from .delivery.fanout import user_group
from .delivery.localgroups import local_groups
from .models import Session
from .protocol import CLOSE_HEARTBEAT_EXPIRED, CLOSE_SERVER_REQUEST
from .reconnect import drop_dead_connections, refused_while_lost
from .storage.call_queue import Batcher

# Message type a consumer handles by closing its socket (see ChatConsumer.session_close).
SESSION_CLOSE = "session.close"


@refused_while_lost  # a heartbeat while the database is away: 4503
@database_sync_to_async
def reopen_session(user, channel_name):
    """Count a connection as open again after the sweeper closed its row (or the reaper took it)."""
    Session.objects.update_or_create(
        channel_name=channel_name,
        defaults={
            "user": user,
            "last_heartbeat": timezone.now(),
            "closed_at": None,
            "close_code": None,
        },
    )


def touch_sessions_sync(channel_names):
    """Record the heartbeats of many sockets: one UPDATE, and a SELECT only when some session
    was unknown or closed. Returns, per name, whether its session was open."""
    open_sessions = Session.objects.filter(
        channel_name__in=set(channel_names), closed_at__isnull=True
    )
    touched = open_sessions.update(last_heartbeat=timezone.now())
    if touched == len(set(channel_names)):
        return [True] * len(channel_names)
    alive = set(open_sessions.values_list("channel_name", flat=True))
    return [name in alive for name in channel_names]


# Heartbeats of all sockets arriving while one UPDATE runs go in the next: ten thousand idle
# sockets cost a few statements a second, not one each.
_heartbeats = Batcher(refused_while_lost(database_sync_to_async(touch_sessions_sync)), limit=1000)


async def touch_session(channel_name):
    """Record a heartbeat; returns False when the session is unknown or already closed."""
    return await _heartbeats.submit(channel_name)


def close_sessions_sync(closes):
    """Mark the sessions of closed sockets closed: one UPDATE per close code among
    ``closes`` (``(channel name, code)`` pairs), so a restart's thousand closes cost a few."""
    now = timezone.now()
    by_code = {}
    for channel_name, code in closes:
        by_code.setdefault(code, []).append(channel_name)
    for code, names in by_code.items():
        Session.objects.filter(channel_name__in=names, closed_at__isnull=True).update(
            closed_at=now, close_code=code
        )
    return [None] * len(closes)


_closes = Batcher(database_sync_to_async(close_sessions_sync), limit=1000)


async def close_session(channel_name, code):
    """Record that a socket closed (with ``code``); shares its UPDATE with closes in flight."""
    await _closes.submit((channel_name, code))


@database_sync_to_async
def _claim_expired(cutoff, now):
    """Mark open sessions silent since ``cutoff`` as closed; return ``{user id: [channel
    names]}`` of them."""
    drop_dead_connections()
    stale = list(
        Session.objects.filter(closed_at__isnull=True, last_heartbeat__lt=cutoff).values_list(
            "pk", "user_id", "channel_name"
        )
    )
    if stale:
        Session.objects.filter(pk__in=[pk for pk, _, _ in stale], closed_at__isnull=True).update(
            closed_at=now, close_code=CLOSE_HEARTBEAT_EXPIRED
        )
    by_user = {}
    for _, user_id, channel_name in stale:
        by_user.setdefault(user_id, []).append(channel_name)
    return by_user


def close_message(user_id, code, channel_names=None):
    """The group message that closes a user's sockets (on every daemon: the user's group), or
    only those named by ``channel_names``. A socket has no layer channel of its own
    (ChatConsumer.__call__): its user's group is how a message reaches it."""
    message = {"type": SESSION_CLOSE, "group": user_group(user_id), "code": code}
    if channel_names is not None:
        message["channels"] = list(channel_names)
    return message


async def expire_silent_sessions(threshold_seconds, now=None, channel_layer=None):
    """Close every socket whose last heartbeat is older than the threshold.

    The row is marked closed first, then the socket is told to close with 4408 so the client
    reconnects and resumes; a socket is never left open while no longer counted as a session.
    Returns the number of sessions expired.
    """
    now = now or timezone.now()
    by_user = await _claim_expired(now - timedelta(seconds=threshold_seconds), now)
    groups = local_groups(channel_layer or get_channel_layer())
    for user_id, channel_names in by_user.items():
        await groups.publish(close_message(user_id, CLOSE_HEARTBEAT_EXPIRED, channel_names))
    return sum(len(names) for names in by_user.values())


@database_sync_to_async
def reap_sessions(retention_seconds, now=None):
    """Delete session rows whose last heartbeat is older than the retention; returns the count."""
    drop_dead_connections()
    cutoff = (now or timezone.now()) - timedelta(seconds=retention_seconds)
    deleted, _ = Session.objects.filter(last_heartbeat__lt=cutoff).delete()
    return deleted


@database_sync_to_async
def open_sessions_of(user_id):
    return list(
        Session.objects.filter(user_id=user_id, closed_at__isnull=True)
        .order_by("connected_at")
        .values("channel_name", "connected_at", "last_heartbeat")
    )


async def disconnect_user(user_id, code=CLOSE_SERVER_REQUEST, channel_layer=None):
    """Close every open socket of a user; returns how many were told to close."""
    sessions = await open_sessions_of(user_id)
    if sessions:
        groups = local_groups(channel_layer or get_channel_layer())
        await groups.publish(close_message(user_id, code))
    return len(sessions)


@database_sync_to_async
def session_counts():
    return {
        "open_sessions": Session.objects.filter(closed_at__isnull=True).count(),
        "users_online": Session.objects.filter(closed_at__isnull=True)
        .values("user_id")
        .distinct()
        .count(),
        "session_rows": Session.objects.count(),
    }
