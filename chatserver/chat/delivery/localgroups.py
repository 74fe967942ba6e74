"""Process-local group membership: one channel-layer subscription per group and process.

Channels' own groups put every consumer's channel in the layer, so a room broadcast is delivered
once per member: one Redis list push and pop, one deserialisation and one handler dispatch (with
a thread hop to close database connections) per socket. Here each process subscribes one channel
of its own to a group when its first local consumer joins, and fans each message out to the local
members itself. Room frames are written with the connection's direct sender when the server
offers one (the daemon does: an Autobahn prepared frame, encoded once for every socket), else
through the consumer's ordinary ``send``.

Messages leave for the layer through an outbox per group, so other processes get a room's
messages in the order this one delivered them (groups do not wait for each other), and a request
that does not need to know when the layer has them (a stored message's broadcast) does not wait
a Redis round trip for it. What queued in an outbox while the previous send was in flight leaves
as one layer message (``LAYER_BATCH``): a busy room costs a Redis round trip per batch, not per
message, so the outbox keeps up with the rate the daemon stores messages at.

Group memberships in the layer are re-asserted every ``refresh_interval`` seconds, so a Redis
restart or the layer's group expiry cannot silently drop a live socket from a room; a client that
missed frames meanwhile sees a ``seq`` gap and resumes.
"""

import asyncio
import itertools
import logging
import uuid
from collections import defaultdict, deque

from .. import runtime
from ..operations import metrics

logger = logging.getLogger(__name__)

ROOM_EVENT = "room.event"  # a pre-encoded room frame, written after ChatConsumer.wants_room_frame
LAYER_BATCH = "localgroups.batch"  # several group messages in one layer message, in order


class LocalGroups:
    def __init__(
        self,
        layer,
        refresh_interval=30.0,
        max_concurrent_ops=32,
        outbox_limit=1000,
        batch_limit=100,
        batch_bytes=256 * 1024,
        linger=0.0,
    ):
        self.layer = layer
        self.id = uuid.uuid4().hex  # marks what this process publishes (see publish)
        # The loop it serves; holding it also keeps the loop's id from being reused by another
        # loop while this object sits in the registry (keyed by ids).
        self.loop = asyncio.get_running_loop()
        # A connect storm must not open one Redis connection per connecting socket: the pool
        # would overflow ("Too many connections"). Group changes queue here instead.
        self._ops = asyncio.Semaphore(max_concurrent_ops)
        self.refresh_interval = refresh_interval
        self.members = defaultdict(set)  # group -> local consumers
        self.channel = None
        self._subscribed = {}  # group -> Future of its group_add (self._done once it is done)
        # One finished future stands for every finished group_add: an idle socket's own group
        # keeps no Task of its own alive.
        self._done = self.loop.create_future()
        self._done.set_result(None)
        # A group whose last local member left stays subscribed ``linger`` seconds: sockets that
        # drop and come back (a network blip, a reconnect storm) cost no layer operation.
        self.linger = linger
        self._lingering = {}  # group -> TimerHandle of its delayed discard
        self._leaving = set()  # discards started by a timer
        self._receiver = None
        self._refresher = None
        self._channel_ready = None
        self._outboxes = {}  # group -> deque of (message, future of its layer send), oldest first
        self._outbox_tasks = set()
        self._queued = 0  # messages in all outboxes
        self._outbox_limit = outbox_limit
        self._batch_limit = batch_limit  # messages per layer message
        self._batch_bytes = batch_bytes  # ... and frame text per layer message, roughly

    # -- membership ----------------------------------------------------------------------

    async def add(self, group, member):
        """Add a consumer to a group; returns once this process receives the group's messages."""
        self.members[group].add(member)
        lingering = self._lingering.pop(group, None)
        if lingering is not None:
            lingering.cancel()  # still subscribed: nothing to ask the layer
        await self._subscribe(group)

    async def discard(self, group, member):
        members = self.members.get(group)
        if members is None:
            return
        members.discard(member)
        if not members:
            del self.members[group]
            if self.linger > 0 and group in self._subscribed:
                self._lingering[group] = self.loop.call_later(
                    self.linger, self._linger_ended, group
                )
                return
            await self._leave(group)

    def _linger_ended(self, group):
        self._lingering.pop(group, None)
        if self.members.get(group):
            return
        leaving = asyncio.ensure_future(self._leave(group))
        self._leaving.add(leaving)
        leaving.add_done_callback(self._left)

    def _left(self, leaving):
        self._leaving.discard(leaving)
        if not leaving.cancelled() and leaving.exception() is not None:
            error = leaving.exception()
            logger.error(
                "local groups: leaving a group failed",
                exc_info=(type(error), error, error.__traceback__),
            )

    async def _leave(self, group):
        """Unsubscribe this process from a group its last local member left."""
        subscribed = self._subscribed.pop(group, None)
        if subscribed is not None and self.channel is not None:
            await asyncio.shield(subscribed)
            async with self._ops:
                with metrics.layer_group_discard.time():
                    await self.layer.group_discard(group, self.channel)
            if self.members.get(group):
                # Someone joined while the discard was in flight, and their group_add may
                # have reached the layer first: subscribe again, after the discard.
                self._subscribed.pop(group, None)
                await self._subscribe(group)

    async def _subscribe(self, group):
        subscribed = self._subscribed.get(group)
        if subscribed is None:
            subscribed = self._subscribed[group] = asyncio.ensure_future(self._group_add(group))
        try:
            await asyncio.shield(subscribed)
        except Exception:
            if self._subscribed.get(group) is subscribed:
                del self._subscribed[group]  # let the next add retry
            raise
        if self._subscribed.get(group) is subscribed:
            self._subscribed[group] = self._done

    async def _group_add(self, group):
        channel = await self._ensure_channel()
        async with self._ops:
            with metrics.layer_group_add.time():
                await self.layer.group_add(group, channel)

    async def _ensure_channel(self):
        if self._channel_ready is None:
            self._channel_ready = asyncio.ensure_future(self.layer.new_channel())
        self.channel = await asyncio.shield(self._channel_ready)
        if self._receiver is None or self._receiver.done():
            self._receiver = asyncio.ensure_future(self._receive_loop())
            self._refresher = asyncio.ensure_future(self._refresh_loop())
        return self.channel

    # -- delivery ------------------------------------------------------------------------

    async def _receive_loop(self):
        backoff = 0.1
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("local groups: receive failed; retrying in %.1fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.1
            if message.get("publisher") == self.id:
                continue  # published here: the local members have it already
            for each in unbatched(message):
                try:
                    await self.deliver(each)
                except Exception:
                    logger.exception("local groups: delivering %s failed", each.get("type"))

    async def publish(self, message, wait=True):
        """Send a group message: to this process's members at once, to the other processes
        through the layer, in publish order.

        A process's own members never wait for the round trip through Redis (with one daemon
        per machine, that is every member), and they get what one request publishes in the
        order it publishes (a membership change, then the room frame that follows it); the copy
        the layer brings back is skipped. With ``wait`` the call returns once the layer has the
        message and raises its failure; without, it returns after the local delivery (a failure
        is logged) unless the outbox is full, which makes the caller wait its turn.
        """
        message["publisher"] = self.id
        try:
            await self.deliver(message)
        except Exception:
            logger.exception("local groups: delivering %s failed", message.get("type"))
        sent = self._send_in_order(message)
        if wait:
            await sent
            return
        sent.add_done_callback(_log_failure)
        if self._queued > self._outbox_limit:
            await asyncio.wait([sent])

    def _send_in_order(self, message):
        group = message["group"]
        outbox = self._outboxes.get(group)
        if outbox is None:
            outbox = self._outboxes[group] = deque()
            task = asyncio.ensure_future(self._send_outbox(group, outbox))
            self._outbox_tasks.add(task)
            task.add_done_callback(self._outbox_tasks.discard)
        sent = self.loop.create_future()
        outbox.append((message, sent))
        self._queued += 1
        return sent

    async def _send_outbox(self, group, outbox):
        """Hand a group's queued messages to the layer one send after the other: each send is
        complete before the next starts, so no two can overtake each other in Redis. A send
        carries everything queued meanwhile (up to the batch limits) as one LAYER_BATCH."""
        try:
            while outbox:
                taken = self._batch_size(outbox)
                entries = [outbox[i] for i in range(taken)]
                if taken == 1:
                    message = entries[0][0]
                else:
                    message = {
                        "type": LAYER_BATCH,
                        "group": group,
                        "publisher": self.id,
                        "messages": [queued for queued, _ in entries],
                    }
                try:
                    with metrics.layer_group_send.time():
                        await self.layer.group_send(group, message)
                except Exception as error:  # noqa: BLE001 - the waiters or the log get it
                    outcome = error
                else:
                    outcome = None
                for _ in range(taken):
                    outbox.popleft()
                self._queued -= taken
                for _, sent in entries:
                    if sent.done():  # its waiter was cancelled
                        continue
                    if outcome is None:
                        sent.set_result(None)
                    else:
                        sent.set_exception(outcome)
        finally:
            if self._outboxes.get(group) is outbox:
                del self._outboxes[group]
            if not self.loop.is_closed():  # cancelled: no waiter may hang on a stopped outbox
                while outbox:
                    outbox.popleft()[1].cancel()
                    self._queued -= 1

    def _batch_size(self, outbox):
        """How many of the oldest queued messages the next layer send carries."""
        size = len(outbox[0][0].get("text") or "")
        taken = 1
        for message, _ in itertools.islice(outbox, 1, self._batch_limit):
            size += len(message.get("text") or "")
            if size > self._batch_bytes:
                break
            taken += 1
        return taken

    async def deliver(self, message):
        """Hand one group message to the local members of its group."""
        members = self.members.get(message.get("group"))
        if not members:
            return
        if message["type"] == ROOM_EVENT:
            await self._deliver_room_frame(message, list(members))
            return
        handler_name = message["type"].replace(".", "_")
        for member in list(members):
            await getattr(member, handler_name)(message)

    async def _deliver_room_frame(self, message, members):
        prepared = {}  # direct sender factory -> frame prepared once for all its sockets
        pending = []
        skipped = 0
        for member in members:
            if not member.wants_room_frame(message):
                skipped += 1
                continue
            sender = member.direct_sender
            if sender is not None and sender.is_open():
                frame = prepared.get(sender.factory)
                if frame is None:
                    frame = prepared[sender.factory] = sender.prepare(message["text"])
                sender.send_prepared(frame)
            else:
                pending.append(member.send(text_data=message["text"]))
        metrics.room_frame_deliveries.inc(len(members) - skipped)  # once per frame, not socket
        if pending:
            await asyncio.gather(*pending)

    # -- keeping the layer's memberships alive -------------------------------------------

    async def _refresh_loop(self):
        while True:
            await asyncio.sleep(self.refresh_interval)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("local groups: refreshing group memberships failed")

    async def refresh(self):
        """Re-add this process's channel to every group it serves (idempotent in the layer)."""
        if self.channel is None:
            return
        for group in list(self.members):
            async with self._ops:
                with metrics.layer_group_add.time():
                    await self.layer.group_add(group, self.channel)

    async def close(self, drain_timeout=5.0):
        """Send what the outbox holds, stop receiving and leave every group (the daemon calls
        this on shutdown)."""
        for lingering in self._lingering.values():
            lingering.cancel()  # left below with every other subscribed group
        self._lingering.clear()
        for leaving in list(self._leaving):
            leaving.cancel()
        await asyncio.gather(*self._leaving, return_exceptions=True)
        outbox_tasks = list(self._outbox_tasks)
        if outbox_tasks:
            await asyncio.wait(outbox_tasks, timeout=drain_timeout)
            for task in outbox_tasks:
                task.cancel()
            await asyncio.gather(*outbox_tasks, return_exceptions=True)
        for task in (self._receiver, self._refresher):
            if task is not None:
                task.cancel()
        for task in (self._receiver, self._refresher):
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        if self.channel is not None:
            for group in list(self._subscribed):
                try:
                    await self.layer.group_discard(group, self.channel)
                except Exception:
                    logger.exception("local groups: leaving %s failed", group)
        self._subscribed.clear()
        self.members.clear()
        self._receiver = self._refresher = None


def unbatched(message):
    """The group messages one layer message carries, in publish order."""
    if message.get("type") == LAYER_BATCH:
        return message["messages"]
    return [message]


def _log_failure(sent):
    """Nobody waits for this layer send: log its failure."""
    if not sent.cancelled() and sent.exception() is not None:
        error = sent.exception()
        logger.error(
            "local groups: publishing to the layer failed",
            exc_info=(type(error), error, error.__traceback__),
        )


def concurrent_ops_for(layer, ceiling=32):
    """Concurrent group operations that leave half of a Redis layer's pool for the rest."""
    pool_sizes = [
        host.get("max_connections")
        for host in getattr(layer, "hosts", None) or []
        if isinstance(host, dict) and host.get("max_connections")
    ]
    if not pool_sizes:
        return ceiling
    return max(1, min(ceiling, min(pool_sizes) // 2))


def local_groups(layer):
    """The process's LocalGroups for a channel layer (one per layer and event loop, kept by
    chat.runtime, which closes it when the loop stops)."""
    from ..conf import option

    def make():
        return LocalGroups(
            layer,
            refresh_interval=option("GROUP_REFRESH_INTERVAL"),
            max_concurrent_ops=concurrent_ops_for(layer),
            linger=option("GROUP_LINGER_SECONDS"),
        )

    return runtime.per_layer(LocalGroups, layer, make)
