"""Presence as the database knows it: whose presence one may watch, what it is when a
subscription starts, when a user was last seen, who hides theirs, and whose sessions the heartbeat
sweeper closed."""

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from ..conf import option
from ..models import Membership, PresenceSetting, Session
from ..protocol import CLOSE_HEARTBEAT_EXPIRED, invalid


def _bounded(user_ids):
    limit = option("PRESENCE_MAX_USERS")
    if len(user_ids) > limit:
        raise invalid(f"At most {limit} users can be watched; subscribe to one room instead.")
    return user_ids


def room_members(room_id, viewer):
    """The members of a room, the viewer left out (the viewer's access is checked already)."""
    members = Membership.objects.filter(room_id=room_id).exclude(user=viewer)
    return _bounded(list(members.order_by("user_id").values_list("user_id", flat=True)))


def peers(user):
    """Everyone who shares a room with ``user``."""
    rooms = Membership.objects.filter(user=user).values("room_id")
    others = Membership.objects.filter(room_id__in=rooms).exclude(user=user)
    return _bounded(sorted(set(others.values_list("user_id", flat=True).distinct())))


def snapshot(user_ids, away_after, now=None):
    """``{user_id: (status, last_seen iso or None, hidden)}`` from open sessions and settings
    (two queries): online with an open session that sent a heartbeat within ``away_after``
    seconds, away with an older one, else offline."""
    now = now or timezone.now()
    open_sessions = dict(
        Session.objects.filter(user_id__in=user_ids, closed_at__isnull=True)
        .values("user_id")
        .annotate(latest=Max("last_heartbeat"))
        .values_list("user_id", "latest")
    )
    settings = {s.user_id: s for s in PresenceSetting.objects.filter(user_id__in=user_ids)}
    out = {}
    for user_id in user_ids:
        setting = settings.get(user_id)
        hidden = setting is not None and setting.hidden
        last_seen = setting.last_seen.isoformat() if setting and setting.last_seen else None
        latest = open_sessions.get(user_id)
        if latest is None:
            status = "offline"
        elif latest >= now - timedelta(seconds=away_after):
            status = "online"
        else:
            status = "away"
        out[user_id] = (status, last_seen, hidden)
    return out


def offline_since(user_id, now=None):
    """The user's last socket here closed: when no session of theirs is open anywhere, record
    and return ``last_seen``; None while one is (on another daemon)."""
    return offline_since_many([user_id], now)[0]


def offline_since_many(user_ids, now=None):
    """``offline_since`` for the users whose last socket here closed meanwhile (a restart's
    thousand closes): two queries for the batch, one per user only if one was deleted."""
    still_open = set(
        Session.objects.filter(user_id__in=set(user_ids), closed_at__isnull=True).values_list(
            "user_id", flat=True
        )
    )
    now = now or timezone.now()
    gone = sorted(set(user_ids) - still_open)
    try:
        _record_offline(gone, now)
    except IntegrityError:  # a user was deleted (which closed the socket): nobody to show
        recorded = set()
        for user_id in gone:
            try:
                _record_offline([user_id], now)
            except IntegrityError:
                continue
            recorded.add(user_id)
        return [now if user_id in recorded else None for user_id in user_ids]
    return [None if user_id in still_open else now for user_id in user_ids]


def _record_offline(user_ids, now):
    with transaction.atomic():
        PresenceSetting.objects.bulk_create(
            [PresenceSetting(user_id=user_id, last_seen=now) for user_id in user_ids],
            update_conflicts=True,
            unique_fields=["user"],
            update_fields=["last_seen"],
        )


def swept(closed_at, away_after):
    """The users whose sessions the heartbeat sweeper closed at ``closed_at`` (a daemon that
    died never said they left), as ``{user_id: (status, last_seen iso or None)}``: ``offline``
    when none of their sessions is open any more (their last heartbeat is recorded as
    ``last_seen``, unless a later one is), else ``online`` or ``away`` from the heartbeats of
    the sessions still open, as :func:`snapshot` says."""
    last_heartbeats = dict(
        Session.objects.filter(closed_at=closed_at, close_code=CLOSE_HEARTBEAT_EXPIRED)
        .values("user_id")
        .annotate(latest=Max("last_heartbeat"))
        .values_list("user_id", "latest")
    )
    if not last_heartbeats:
        return {}
    still_open = set(
        Session.objects.filter(user_id__in=list(last_heartbeats), closed_at__isnull=True)
        .values_list("user_id", flat=True)
        .distinct()
    )
    for user_id, seen in last_heartbeats.items():
        if user_id not in still_open:
            _record_last_seen(user_id, seen)
    now = timezone.now()
    known = snapshot(list(last_heartbeats), away_after, now)
    return {user_id: (status, last_seen) for user_id, (status, last_seen, _) in known.items()}


def _record_last_seen(user_id, seen):
    """Set ``last_seen`` to ``seen`` unless a later one is recorded already."""
    try:
        with transaction.atomic():
            PresenceSetting.objects.bulk_create(
                [PresenceSetting(user_id=user_id, last_seen=seen)], ignore_conflicts=True
            )
            PresenceSetting.objects.filter(
                Q(last_seen__lt=seen) | Q(last_seen__isnull=True), user_id=user_id
            ).update(last_seen=seen)
    except IntegrityError:  # the user was deleted meanwhile: nobody to show
        pass


def hidden_setting(user):
    """Whether the user hides their presence; the reply data."""
    setting = PresenceSetting.objects.filter(user=user).values_list("hidden", flat=True).first()
    return {"hidden": bool(setting)}


def set_hidden(user, hidden):
    """Hide or show the user's presence; the reply data."""
    PresenceSetting.objects.bulk_create(
        [PresenceSetting(user=user, hidden=hidden)],
        update_conflicts=True,
        unique_fields=["user"],
        update_fields=["hidden"],
    )
    return {"hidden": hidden}
