"""Presence: who is online, away or offline, told to the sockets that subscribed, on every daemon.

One ``PresenceHub`` per process (per channel layer and event loop) does three things:

- It follows the users with a socket here: a count of sockets and the time of their last frame,
  per user (not per socket, and no task per socket). A user's first socket here publishes
  ``online``; no frame or heartbeat for ``PRESENCE_AWAY_AFTER`` seconds publishes ``away``; a
  frame after that ``online`` again; the last socket closing publishes ``offline`` with
  ``last_seen`` when the database holds no open session of the user elsewhere either.
- Changes travel as ``presence.changed`` group messages on ``presence.<user id>`` through the
  process's local groups (localgroups.py), so every daemon with a subscriber hears them once.
- For the sockets that subscribed (presence.subscribe) it keeps what each watched user looks like
  and queues changes per subscriber; one task sends each subscriber at most one
  ``presence.dispatch`` frame per ``PRESENCE_FLUSH_INTERVAL``, carrying every change since the
  last one. A thousand members coming online cost a subscriber one frame a second, not a thousand.

A user with sockets on several daemons is ``online`` while any daemon says so (``away`` only
when every daemon with a socket of theirs says ``away``); ``offline`` comes from the daemon that
closed the last open session (the database says which). Hidden users (presence.hide) look offline
without ``last_seen``; subscribers learn who is hidden from the database when they subscribe and
from the hide events after that, so a connect costs no query.

Subscribers keep each daemon's word per watched user, and a word can go stale: a daemon killed
with SIGKILL never says ``offline``, and a subscription starts from the database's snapshot,
which cannot tell the daemons apart. Two things mend that without any work per frame:

- The heartbeat sweeper of a surviving daemon closes the dead daemon's sessions
  (INACTIVITY_THRESHOLD later) and then publishes a *reset* for their users
  (:func:`sessions_swept`): subscribers drop every daemon's word for the user and take the
  database's (``offline`` with ``last_seen`` when no session is left).
- Every hub listens on one shared group, ``presence.hubs``, for ``presence.recount`` messages:
  a reset, and every ``away`` or ``offline`` a daemon publishes. A hub with sockets of that user
  answers by publishing its own word again, so a user active on one daemon and idle on another
  stays ``online`` for every subscriber, and a reset is followed by the live daemons' words.
"""

import asyncio
import logging
import time
import uuid

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from .. import runtime
from ..conf import option
from ..protocol import PRESENCE as DISPATCH
from ..protocol import encode_event
from ..reconnect import LOST
from ..services.presence import offline_since_many
from ..services.presence import swept as swept_db
from ..storage.call_queue import Batcher
from .localgroups import local_groups

# The last sockets of many users closing at once (a restart) ask the database together.
_offline_checks = Batcher(database_sync_to_async(offline_since_many), limit=1000)


async def offline_since(user_id):
    return await _offline_checks.submit(user_id)


swept = database_sync_to_async(swept_db)

logger = logging.getLogger(__name__)

PRESENCE_CHANGED = "presence.changed"  # group message; PresenceHub.presence_changed
PRESENCE_RECOUNT = "presence.recount"  # on HUBS; PresenceHub.presence_recount
HUBS = "presence.hubs"  # the group every process's hub listens on
ONLINE, AWAY, OFFLINE = "online", "away", "offline"
SNAPSHOT = "snapshot"  # what the database said when the first subscriber here asked


def presence_group(user_id):
    return f"presence.{user_id}"


class LocalUser:
    """A user with sockets in this process."""

    __slots__ = ("sockets", "last_active", "status")

    def __init__(self, now):
        self.sockets = 0
        self.last_active = now
        self.status = ONLINE


class Watched:
    """What subscribers here know of one user: each daemon's word, hidden, last_seen."""

    __slots__ = ("states", "hidden", "last_seen", "shown", "watchers")

    def __init__(self, status, last_seen, hidden):
        self.states = {SNAPSHOT: status} if status != OFFLINE else {}
        self.last_seen = last_seen
        self.hidden = hidden
        self.shown = None
        self.watchers = set()

    def entry(self, user_id):
        """The user as subscribers see it."""
        if self.hidden:
            return {"user_id": user_id, "status": OFFLINE, "last_seen": None}
        statuses = set(self.states.values())
        status = ONLINE if ONLINE in statuses else AWAY if AWAY in statuses else OFFLINE
        last_seen = self.last_seen if status == OFFLINE else None
        return {"user_id": user_id, "status": status, "last_seen": last_seen}


class PresenceHub:
    def __init__(self, layer, away_after, flush_interval, clock=time.monotonic):
        self.layer = layer
        self.loop = asyncio.get_running_loop()
        self.id = uuid.uuid4().hex  # this process's word in Watched.states
        self.away_after = away_after
        self.flush_interval = flush_interval
        self.clock = clock
        self.local = {}  # user id -> LocalUser
        self.watched = {}  # user id -> Watched
        self.subscriptions = {}  # consumer -> frozenset of user ids
        self.pending = {}  # consumer -> {user id: entry} not sent yet
        self._ticker = None
        self._joined_hubs = False

    # -- this process's users ------------------------------------------------------------

    def opened(self, user_id):
        """A socket of ``user_id`` connected here."""
        user = self.local.get(user_id)
        if user is None:
            self._join_hubs()
            user = self.local[user_id] = LocalUser(self.clock())
            self._publish(user_id, ONLINE)
            self._tick_soon()
        user.sockets += 1
        self.touch(user_id)

    def touch(self, user_id):
        """A frame from ``user_id`` arrived: they are active (called for every frame)."""
        user = self.local.get(user_id)
        if user is None:
            return
        user.last_active = self.clock()
        if user.status == AWAY:
            user.status = ONLINE
            self._publish(user_id, ONLINE)

    async def closed(self, consumer):
        """A socket closed (its session row closed already). The user's last socket here asks
        the database whether one is open elsewhere before it publishes ``offline``."""
        self.unsubscribe(consumer)
        user_id = consumer.user.pk
        user = self.local.get(user_id)
        if user is None:
            return
        user.sockets -= 1
        if user.sockets > 0:
            return
        del self.local[user_id]
        try:
            last_seen = await offline_since(user_id)
        except Exception as error:  # the database is away (shutting down?): say nothing
            logger.warning("presence: could not record user %s as offline: %s", user_id, error)
            self._stop_when_idle()
            return
        if last_seen is not None and user_id not in self.local:  # not back meanwhile
            self._publish(user_id, OFFLINE, last_seen=last_seen.isoformat())
        self._stop_when_idle()

    def status_of(self, user_id):
        user = self.local.get(user_id)
        return None if user is None else user.status

    def hidden_changed(self, user_id, hidden):
        """The user hid or showed their presence (presence.hide): tell their watchers."""
        status = self.status_of(user_id) or OFFLINE
        self._publish(user_id, status, hidden=hidden)

    def _publish(self, user_id, status, **extra):
        asyncio.ensure_future(self._send(self._messages(user_id, status, **extra)))

    def _messages(self, user_id, status, **extra):
        """The group messages of one change: ``presence.changed`` to the user's watchers, and
        for ``away``, ``offline`` and resets a ``presence.recount`` to every hub, so the
        daemons with a socket of the user say their word again."""
        message = {
            "type": PRESENCE_CHANGED,
            "group": presence_group(user_id),
            "user_id": user_id,
            "status": status,
            "daemon": self.id,
            **extra,
        }
        if status == ONLINE and not extra.get("reset"):
            return [message]
        return [message, {**message, "type": PRESENCE_RECOUNT, "group": HUBS}]

    async def _send(self, messages):
        groups = local_groups(self.layer)
        for message in messages:
            try:
                await groups.publish(message, wait=False)
            except Exception:  # presence is best effort: the next change corrects it
                logger.exception("presence: publishing %s failed", message["status"])

    def _join_hubs(self):
        """Listen for recounts (once, when the first local user connects or a reset is sent)."""
        if not self._joined_hubs:
            self._joined_hubs = True
            future = asyncio.ensure_future(local_groups(self.layer).add(HUBS, self))
            future.add_done_callback(self._hubs_joined)

    def _hubs_joined(self, future):
        if future.cancelled() or future.exception() is not None:
            self._joined_hubs = False  # the next connect tries again
            if not future.cancelled():
                logger.warning("presence: could not listen for recounts: %s", future.exception())

    async def reset(self, users):
        """Publish what the database says of ``users`` (``{user_id: (status, last_seen)}``) as
        resets: watchers drop every daemon's word for them, and the daemons that have a socket
        of theirs say their word again (the heartbeat sweeper calls this)."""
        self._join_hubs()
        for user_id, (status, last_seen) in users.items():
            await self._send(self._messages(user_id, status, last_seen=last_seen, reset=True))

    async def presence_recount(self, message):
        """Another daemon published ``away``, ``offline`` or a reset for a user (HUBS group):
        when that user has a socket here, say this daemon's word again."""
        user_id = message["user_id"]
        user = self.local.get(user_id)
        if user is None:
            return
        if message.get("reset"):
            self._publish(user_id, user.status)
        elif message["daemon"] == self.id:
            return
        elif message["status"] == OFFLINE or user.status == ONLINE:
            self._publish(user_id, user.status)

    # -- subscribers ---------------------------------------------------------------------

    async def subscribe(self, consumer, user_ids, load):
        """Watch ``user_ids`` for ``consumer`` (replacing what it watched); returns their
        current entries. ``load(user_ids)`` reads the unknown ones from the database as
        ``{user_id: (status, last_seen, hidden)}``."""
        self.unsubscribe(consumer)
        unknown = [uid for uid in user_ids if uid not in self.watched]
        loaded = await load(unknown) if unknown else {}
        new_groups = []
        for uid in user_ids:
            watched = self.watched.get(uid)
            if watched is None:
                watched = self.watched[uid] = Watched(*loaded[uid])
                local = self.status_of(uid)
                if local is not None:
                    watched.states[self.id] = local
                new_groups.append(presence_group(uid))
            watched.watchers.add(consumer)
            watched.shown = watched.entry(uid)
        self.subscriptions[consumer] = frozenset(user_ids)
        groups = local_groups(self.layer)
        await groups.add_many(new_groups, self)
        self._tick_soon()
        return [self.watched[uid].shown for uid in user_ids if uid in self.watched]

    def unsubscribe(self, consumer):
        user_ids = self.subscriptions.pop(consumer, ())
        self.pending.pop(consumer, None)
        groups = None
        for uid in user_ids:
            watched = self.watched.get(uid)
            if watched is None:
                continue
            watched.watchers.discard(consumer)
            if not watched.watchers:
                del self.watched[uid]
                groups = groups or local_groups(self.layer)
                asyncio.ensure_future(groups.discard(presence_group(uid), self))

    async def presence_changed(self, message):
        """A ``presence.changed`` group message (LocalGroups.deliver calls members' handlers)."""
        user_id = message["user_id"]
        watched = self.watched.get(user_id)
        if watched is None:
            return
        if "hidden" in message:
            watched.hidden = message["hidden"]
        status = message["status"]
        if status == OFFLINE or message.get("reset"):
            # Every daemon's word goes (a reset's status stands in for the daemons that have a
            # socket of the user, until they say their word again); this one's own stays true.
            watched.states.clear()
            if status != OFFLINE:
                watched.states[SNAPSHOT] = status
            local = self.status_of(user_id)
            if local is not None:
                watched.states[self.id] = local
            watched.last_seen = message.get("last_seen") or watched.last_seen
        else:
            watched.states.pop(SNAPSHOT, None)
            watched.states[message["daemon"]] = status
        entry = watched.entry(user_id)
        if entry == watched.shown:
            return
        watched.shown = entry
        for consumer in watched.watchers:
            self.pending.setdefault(consumer, {})[user_id] = entry
        self._tick_soon()

    # -- the one task: away and flushes --------------------------------------------------

    async def close(self):
        """Stop the ticker (chat.runtime.stop, when the event loop stops)."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)

    def _tick_soon(self):
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.ensure_future(self._tick_loop())

    def _stop_when_idle(self):
        if not self.local and not self.subscriptions and self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    async def _tick_loop(self):
        while self.local or self.pending or self.subscriptions:
            await asyncio.sleep(self.flush_interval)
            try:
                self.mark_away()
                await self.flush()
            except Exception:
                logger.exception("presence: tick failed")

    def mark_away(self):
        """Publish ``away`` for local users idle for ``away_after`` seconds."""
        idle_since = self.clock() - self.away_after
        for user_id, user in self.local.items():
            if user.status == ONLINE and user.last_active <= idle_since:
                user.status = AWAY
                self._publish(user_id, AWAY)

    async def flush(self):
        """One presence.dispatch frame per subscriber with changes since the last flush."""
        pending, self.pending = self.pending, {}
        for consumer, entries in pending.items():
            text = encode_event(DISPATCH, {"users": list(entries.values())})
            try:
                await consumer.send(text_data=text)
            except Exception:  # that socket is closing; the others still get theirs
                logger.debug("presence: could not write to %s", consumer, exc_info=True)


async def sessions_swept(closed_at, channel_layer=None):
    """The heartbeat sweeper closed sessions at ``closed_at``: publish the presence of their
    users as the database now has it (a reset). Best effort: a failure is logged, the sweep
    stands. Returns the number of users told about."""
    try:
        users = await swept(closed_at, option("PRESENCE_AWAY_AFTER"))
        if users:
            await hub(channel_layer or get_channel_layer()).reset(users)
        return len(users)
    except LOST as error:  # the database went away since the sweep: one line, no traceback
        logger.warning("presence: the swept sessions' users stay as they were: %s", error)
    except Exception:
        logger.exception("presence: publishing the swept sessions' users failed")
    return 0


def hub(layer):
    """The process's PresenceHub for a channel layer (one per layer and event loop, kept by
    chat.runtime, which closes it when the loop stops)."""

    def make():
        return PresenceHub(layer, option("PRESENCE_AWAY_AFTER"), option("PRESENCE_FLUSH_INTERVAL"))

    return runtime.per_layer(PresenceHub, layer, make)
