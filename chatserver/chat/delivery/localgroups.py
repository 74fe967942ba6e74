"""Process-local groups, and one channel-layer group that every process listens on.

Channels' own groups put every consumer's channel in the layer, so a room broadcast is delivered
once per member: one Redis list push and pop, one deserialisation and one handler dispatch (with
a thread hop to close database connections) per socket. Here a process keeps its groups' members
itself and the layer carries one group, ``BUS``: every process's channel is in it, and every
group message goes through it to every process, which hands it to the members it has (none,
often). Room frames are written with the connection's direct sender when the server offers one
(the daemon does: an Autobahn prepared frame, encoded once for every socket), else through the
consumer's ordinary ``send``.

One group for everything, as Phoenix.PubSub broadcasts to every node, is what makes the layer's
cost independent of the number of rooms and sockets: joining or leaving a room costs no layer
call (a reconnect storm asks Redis nothing for its groups), re-asserting the subscription after
a Redis restart is one call, and what a process publishes during one loop pass leaves as one
layer message (``LAYER_BATCH``), however many rooms it spans, one Redis round trip instead of
one per room. The price is that every process reads every group message; with the few daemons
one machine runs, that is one deserialisation per batch each.

Messages leave through one outbox, in publish order: the other processes get them in the order
this one delivered them, and a request that does not need to know when the layer has them (a
stored message's broadcast) does not wait a Redis round trip for it. What queued while the
previous send was in flight leaves with the next one, so the outbox keeps up with the rate the
daemon stores messages at.

The subscription is re-asserted every ``refresh_interval`` seconds, so a Redis restart or the
layer's group expiry cannot silently cut a process off; a client that missed frames meanwhile
sees a ``seq`` gap and resumes.
"""

import asyncio
import itertools
import logging
import uuid
from collections import defaultdict, deque

from .. import runtime
from ..conf import option
from ..operations import metrics

logger = logging.getLogger(__name__)

ROOM_EVENT = "room.event"  # a pre-encoded room frame, written after ChatConsumer.wants_room_frame
LAYER_BATCH = "localgroups.batch"  # several group messages in one layer message, in order
BUS = "chatserver.processes"  # the one layer group: every process's channel is in it


class LocalGroups:
    def __init__(
        self,
        layer,
        refresh_interval=30.0,
        outbox_limit=1000,
        batch_limit=100,
        batch_bytes=256 * 1024,
    ):
        self.layer = layer
        self.id = uuid.uuid4().hex  # marks what this process publishes (see publish)
        # The loop it serves; holding it also keeps the loop's id from being reused by another
        # loop while this object sits in the registry (keyed by ids).
        self.loop = asyncio.get_running_loop()
        self.refresh_interval = refresh_interval
        self.members = defaultdict(set)  # group -> local consumers
        self.channel = None
        self._joining = None  # Task of the bus subscription (a new one after a failure)
        self._on_bus = False
        self._receiver = None
        self._refresher = None
        self._outbox = deque()  # (message, future of its layer send), oldest first
        self._sender = None  # the Task sending the outbox, while it holds anything
        self._outbox_limit = outbox_limit
        self._batch_limit = batch_limit  # messages per layer message
        self._batch_bytes = batch_bytes  # ... and frame text per layer message, roughly

    # -- membership ----------------------------------------------------------------------

    async def add(self, group, member):
        await self.add_many((group,), member)

    async def add_many(self, groups, member):
        """Add a consumer to groups; returns once this process receives group messages (at
        once but for the process's first add, which subscribes it to the bus). One call for a
        connect's groups: a task per group cost every connect and disconnect six."""
        for group in groups:
            self.members[group].add(member)
        if groups and not self._on_bus:  # no groups, nothing to wait for (nor to fail)
            await self._join_bus()

    async def discard(self, group, member):
        await self.discard_many((group,), member)

    async def discard_many(self, groups, member):
        for group in groups:
            members = self.members.get(group)
            if members is None:
                continue
            members.discard(member)
            if not members:
                del self.members[group]

    async def _join_bus(self):
        if self._joining is None:
            self._joining = asyncio.ensure_future(self._subscribe())
        joining = self._joining
        try:
            await asyncio.shield(joining)
        except Exception:
            if self._joining is joining:
                self._joining = None  # let the next add retry
            raise
        self._on_bus = True

    async def _subscribe(self):
        self.channel = await self.layer.new_channel()
        with metrics.layer_group_add.time():
            await self.layer.group_add(BUS, self.channel)
        self._receiver = asyncio.ensure_future(self._receive_loop())
        self._refresher = asyncio.ensure_future(self._refresh_loop())

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
        sent = self.loop.create_future()
        self._outbox.append((message, sent))
        if self._sender is None:
            self._sender = asyncio.ensure_future(self._send_outbox())
        if wait:
            await sent
            return
        sent.add_done_callback(_log_failure)
        if len(self._outbox) > self._outbox_limit:
            await asyncio.wait([sent])

    async def _send_outbox(self):
        """Hand the queued messages to the layer one send after the other: each send is
        complete before the next starts, so no two can overtake each other in Redis. A send
        carries everything queued meanwhile (up to the batch limits) as one LAYER_BATCH."""
        outbox = self._outbox
        try:
            while outbox:
                taken = self._batch_size()
                entries = [outbox[i] for i in range(taken)]
                if taken == 1:
                    message = entries[0][0]
                else:
                    message = {
                        "type": LAYER_BATCH,
                        "group": BUS,
                        "publisher": self.id,
                        "messages": [queued for queued, _ in entries],
                    }
                try:
                    with metrics.layer_group_send.time():
                        await self.layer.group_send(BUS, message)
                except Exception as error:  # noqa: BLE001 - the waiters or the log get it
                    outcome = error
                else:
                    outcome = None
                for _ in range(taken):
                    outbox.popleft()
                for _, sent in entries:
                    if sent.done():  # its waiter was cancelled
                        continue
                    if outcome is None:
                        sent.set_result(None)
                    else:
                        sent.set_exception(outcome)
        finally:
            self._sender = None
            if not self.loop.is_closed():  # cancelled: no waiter may hang on a stopped outbox
                while outbox:
                    outbox.popleft()[1].cancel()

    def _batch_size(self):
        """How many of the oldest queued messages the next layer send carries."""
        outbox = self._outbox
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
        """Re-add this process's channel to the bus (idempotent in the layer)."""
        if self.channel is None:
            return
        with metrics.layer_group_add.time():
            await self.layer.group_add(BUS, self.channel)

    async def close(self, drain_timeout=5.0):
        """Send what the outbox holds, stop receiving and leave the bus (the daemon calls
        this on shutdown)."""
        sender = self._sender
        if sender is not None:
            await asyncio.wait([sender], timeout=drain_timeout)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        for task in (self._joining, self._receiver, self._refresher):
            if task is not None:
                task.cancel()
        for task in (self._joining, self._receiver, self._refresher):
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        if self._on_bus and self.channel is not None:
            try:
                with metrics.layer_group_discard.time():
                    await self.layer.group_discard(BUS, self.channel)
            except Exception:
                logger.exception("local groups: leaving the bus failed")
        self._on_bus = False
        self.members.clear()
        self._joining = self._receiver = self._refresher = None


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


async def send_to_every_process(layer, message):
    """Hand a group message straight to the layer, for every process's local groups to deliver
    (this one's too): for code that runs outside the daemon's event loop, such as the admin."""
    await layer.group_send(BUS, message)


def local_groups(layer):
    """The process's LocalGroups for a channel layer (one per layer and event loop, kept by
    chat.runtime, which closes it when the loop stops)."""

    def make():
        return LocalGroups(layer, refresh_interval=option("GROUP_REFRESH_INTERVAL"))

    return runtime.per_layer(LocalGroups, layer, make)
