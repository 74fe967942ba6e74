"""The multiplexed chat WebSocket at ``/messaging/``.

One consumer per socket: connection lifecycle, dispatch through one handler table, and the
channel-layer handlers that write pre-encoded frames. ``receive`` turns every failure into one
documented error frame; the socket stays open (only oversized frames close it, with 1009).
"""

import asyncio
import logging
import uuid
from collections import deque

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

from . import runtime, sessions
from .conf import option
from .delivery import fanout, presence
from .delivery.localgroups import local_groups
from .direct_sender import direct_sender_of
from .handlers import HANDLERS, PIPELINED
from .limits.connect_limits import user_may_connect
from .limits.ratelimit import limiter
from .operations import metrics
from .protocol import (
    CLOSE_TOO_BIG,
    CLOSE_TOO_MANY_CONNECTIONS,
    CLOSE_TOO_MANY_SOCKETS,
    CLOSE_UNAUTHENTICATED,
    ERROR_INTERNAL,
    ERROR_NOT_FOUND,
    ERROR_PERMISSION_DENIED,
    ERROR_RATE_LIMITED,
    NOTIFICATIONS,
    ProtocolError,
    client_event,
    encode_error,
    encode_event,
    parse_frame,
    request_id_of,
    with_request_id,
)
from .services.permissions import VIEW, load_accesses
from .storage.call_queue import Batcher

logger = logging.getLogger(__name__)

# Connections' first requests in a room load their Access together (see load_accesses).
access_loader = Batcher(database_sync_to_async(load_accesses))


# What a socket's channel_name starts with: a name, not a channel anyone receives on.
SOCKET_CHANNEL_PREFIX = "socket."


class ChatConsumer(AsyncWebsocketConsumer):
    user = None
    user_id = None  # user.pk, read for every frame in and every room frame out
    direct_sender = None
    pending = None  # the task working through this connection's pipelined answers
    answers = None  # deque of (frame, answer coroutine, text) still to answer, oldest first
    gone = False  # the socket closed: answers still pending have nowhere to go
    presence = None  # the process's presence.PresenceHub, once connected
    refused = False  # closed at connect after its session row was written (4409)

    async def __call__(self, scope, receive, send):
        """Channels' ``AsyncConsumer.__call__``, without a channel-layer channel of its own.

        Whatever is meant for a socket reaches it through the process's local groups: its
        rooms, and its user's group (closes name the socket by ``channel_name``). A layer
        channel per socket would cost a Redis SUBSCRIBE at every connect and an UNSUBSCRIBE at
        every close (a reconnect storm's thousands), and a receive task and a queue for every
        idle socket. ``channel_name`` stays: a unique name for the session row, and for
        skipping the broadcast copy of one's own request.

        With one source of messages, the ASGI ``receive``, it is awaited here in turn, where
        Channels' ``await_many_dispatch`` keeps a task for it and waits on it with
        ``asyncio.wait`` (its set, futures and callbacks): about 2 KiB per idle socket. Each
        message still takes its own turn of the event loop, as that task gave it: a burst of
        frames from one socket does not hold the loop, and a send's batch starts storing while
        the frames behind it queue for the next one.
        """
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = f"{SOCKET_CHANNEL_PREFIX}{uuid.uuid4().hex}"
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
                await asyncio.sleep(0)
        except StopConsumer:
            pass

    async def dispatch(self, message):
        """Route a message to its handler.

        Channels' dispatch first closes stale database connections through a thread hop, for
        every message. Every ORM call here goes through database_sync_to_async, which does that
        in its own thread already, so the hop is skipped.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message):
        """Channels' ``websocket_disconnect`` without its layer groups (this consumer joins
        none: see ``__call__``) and without its thread hop to close stale database connections
        (see ``dispatch``): a reconnect storm's thousands of closes each paid for one."""
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def connect(self):
        # Accept first, then close with 4001: a close before accept reaches the client as a
        # failed handshake (HTTP 403) it cannot tell apart from a network error.
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            metrics.connects_refused.inc()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await user_may_connect(user.pk):
            metrics.connects_refused.inc()
            await self.close(code=CLOSE_TOO_MANY_CONNECTIONS)
            return
        self.user, self.user_id = user, user.pk
        metrics.connects_accepted.inc()
        # The daemon lets us write pre-encoded frames straight to the socket.
        self.direct_sender = direct_sender_of(self.scope)
        self.groups_joined = set()
        self.rooms = set()
        self.access = {}  # room id -> permissions.Access, dropped on membership messages
        if await self.after_connect() and option("ENABLE_PRESENCE"):
            self.presence = presence.hub(self.channel_layer)
            self.presence.opened(user.pk)

    async def after_connect(self):
        """Record the session and read the user's rooms in one database call, then join the
        user's group and every room group the database names, and notify. False when the
        socket was refused (one too many for the user) and is closing."""
        room_ids, summary, open_sockets = await runtime.connected(
            self.user, self.channel_name, option("ENABLE_NOTIFICATION")
        )
        if open_sockets > option("MAX_SOCKETS_PER_USER"):
            # The newest socket goes: the others may be mid-conversation.
            self.refused = True
            await self.close(code=CLOSE_TOO_MANY_SOCKETS)
            return False
        self.rooms.update(room_ids)
        await self.join_groups(
            [fanout.user_group(self.user.pk)] + [fanout.room_group(r) for r in room_ids]
        )
        if summary is not None:
            await self.send(text_data=encode_event(NOTIFICATIONS, summary))
        return True

    async def join_groups(self, groups):
        """Join groups through this process's local groups (one layer subscription each)."""
        groups = [group for group in groups if group not in self.groups_joined]
        self.groups_joined.update(groups)
        local = local_groups(self.channel_layer)
        await local.add_many(groups, self)

    async def leave_groups(self, groups):
        groups = [group for group in groups if group in self.groups_joined]
        self.groups_joined.difference_update(groups)
        local = local_groups(self.channel_layer)
        await local.discard_many(groups, self)

    async def disconnect(self, code):
        self.gone = True
        if self.user is None:
            return
        await self.settle()  # stored messages still go out to the room
        await self.leave_groups(list(self.groups_joined))
        await sessions.close_session(self.channel_name, code)
        if self.presence is not None:
            await self.presence.closed(self)

    # -- client frames -------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if self.user is None or self.refused:  # refused at connect; the close is on its way
            return
        if self.presence is not None:
            self.presence.touch(self.user_id)
        if self._too_big(text_data, bytes_data):
            await self.close(code=CLOSE_TOO_BIG)
            return
        frame = None
        try:
            frame = parse_frame(text_data, bytes_data)
            event = client_event(frame.event_type)
            if not await limiter.allow(self.user_id, event.rate_class):
                raise ProtocolError(ERROR_RATE_LIMITED, f"Too many {event.rate_class} events.")
            if event.name not in PIPELINED:
                await self.settle()
            elif self.answers and len(self.answers) >= option("MAX_PIPELINED_SENDS"):
                await self.settle()  # a flood of sends waits here, not in memory
            await HANDLERS[event.name](self, frame, event.clean(frame.data))
        except Exception as error:  # noqa: BLE001 - answered with one error frame
            if self.pending is None:
                await self.send_failure(error, frame, text_data)
            else:  # after the answers to earlier frames
                self.later(frame, self._raise(error), text_data)

    def later(self, frame, answer, text_data=None):
        """Run the coroutine ``answer`` after the answers still pending on this connection,
        its failure answered as in receive(); the consumer goes on reading frames meanwhile.

        One task per connection works through them in order: answers whose batch is stored
        already run in the same pass of the loop, so their frames leave together.
        """
        if self.answers is None:
            self.answers = deque()
        self.answers.append((frame, answer, text_data))
        if self.pending is None:
            self.pending = asyncio.ensure_future(self._answer_pending())

    async def settle(self):
        """Wait until every pending answer of this connection has been sent."""
        while self.pending is not None:
            await asyncio.wait([self.pending])

    async def _answer_pending(self):
        answers = self.answers
        try:
            while answers:
                frame, answer, text_data = answers[0]
                try:
                    await answer
                except Exception as error:  # noqa: BLE001 - answered with one error frame
                    await self._answer_failure(error, frame, text_data)
                answers.popleft()
        finally:
            self.pending = None
            while answers:  # cancelled: close the answers that never ran
                answers.popleft()[1].close()

    async def _answer_failure(self, error, frame, text_data):
        try:
            await self.send_failure(error, frame, text_data)
        except Exception:  # the socket is gone: nobody to tell; the next answer finds out too
            logger.exception("Could not answer a failed %s", frame.event_type if frame else "frame")

    @staticmethod
    async def _raise(error):
        raise error

    async def send_failure(self, error, frame, text_data):
        if isinstance(error, ProtocolError):
            await self.send_error(error.code, error.detail, frame, text_data)
            return
        logger.error(
            "Unhandled error in %s",
            frame.event_type if frame else "frame",
            exc_info=(type(error), error, error.__traceback__),
        )
        await self.send_error(ERROR_INTERNAL, "Internal server error.", frame, text_data)

    @staticmethod
    def _too_big(text_data, bytes_data):
        limit = option("MAX_FRAME_BYTES")
        if bytes_data is not None:
            return len(bytes_data) > limit
        if text_data is None or len(text_data) * 4 <= limit:  # UTF-8 is at most 4 bytes/char
            return False
        return len(text_data) > limit or len(text_data.encode("utf-8")) > limit

    async def send(self, text_data=None, bytes_data=None, close=False):
        """Write a text frame through the daemon's direct sender when there is one: it joins
        the frames this socket gets in one loop pass into one write (daemon/direct_send.py)."""
        sender = self.direct_sender
        if self.gone:
            return  # the socket closed: nobody to write to (see below)
        if text_data and bytes_data is None and not close and sender and sender.is_open():
            sender.send_text(text_data)
            return
        try:
            await super().send(text_data, bytes_data, close)
        except Exception:
            if sender is None or sender.is_open():
                raise
            # The socket closed under a pending answer (1001 on shutdown). The message it
            # answered is stored: its client resends it (same client_msg_id) or resumes.

    async def send_error(self, code, detail, frame=None, text_data=None):
        if frame is not None:
            event_type, request_id = frame.event_type, frame.request_id
        else:
            event_type, request_id = None, request_id_of(text_data)
        await self.send(text_data=encode_error(code, detail, event_type, request_id))

    async def reply(self, frame, event_type, data):
        """Answer the requesting connection only, echoing its request_id."""
        await self.send(text_data=encode_event(event_type, data, frame.request_id))

    async def respond(self, frame, text):
        """Answer with a frame encoded once for a broadcast."""
        await self.send(text_data=with_request_id(text, frame.request_id))

    # -- permissions and room groups -----------------------------------------------------

    async def require(self, room_id, perm=VIEW):
        """The connection's Access to a room: 4004 when it cannot see it, 4002 when ``perm``
        is missing. Cached until a membership message for the room arrives."""
        access = self.access.get(room_id)
        if access is None or access.expired():  # a mute ran out: read it again
            access = await access_loader.submit((self.user, room_id))
            if access is None:
                raise ProtocolError(ERROR_NOT_FOUND, "Room not found.")
            self.access[room_id] = access
        if perm not in access.perms:
            raise ProtocolError(ERROR_PERMISSION_DENIED, f"Missing permission {perm}.")
        return access

    def forget(self, room_id):
        self.access.pop(room_id, None)

    async def enter_room(self, room_id):
        self.forget(room_id)
        self.rooms.add(room_id)
        await self.join_groups([fanout.room_group(room_id)])

    async def exit_room(self, room_id):
        self.forget(room_id)
        self.rooms.discard(room_id)
        await self.leave_groups([fanout.room_group(room_id)])

    # -- channel-layer messages ----------------------------------------------------------

    def wants_room_frame(self, message):
        """Whether a room broadcast goes to this socket: not when this connection asked for it
        (it got the reply already) or the frame is not meant for this user. Local groups
        write the frame; this only decides (and drops cached access on lock changes)."""
        room_id = message["room_id"]
        if message.get("invalidate"):
            self.forget(room_id)
        return not (
            message.get("origin") == self.channel_name
            or message.get("skip_user") == self.user_id
            or room_id not in self.rooms
        )

    async def membership_changed(self, message):
        """The user joined, left or changed role in a room: follow it on this connection."""
        room_id, state = message["room_id"], message["state"]
        if state == fanout.JOINED:
            await self.enter_room(room_id)
        elif state == fanout.LEFT:
            await self.exit_room(room_id)
        else:
            self.forget(room_id)
        if message.get("text") and message.get("origin") != self.channel_name:
            await self.send(text_data=message["text"])

    async def user_event(self, message):
        await self.send(text_data=message["text"])

    async def session_close(self, message):
        """Sent by the heartbeat sweeper, an operator or a revocation: close with the given code.
        A revoked token family closes only the sockets its access tokens opened; a message
        naming ``channels`` only those sockets."""
        family = message.get("family")
        if family is not None and family != self.scope.get("token_family"):
            return
        channels = message.get("channels")
        if channels is not None and self.channel_name not in channels:
            return  # meant for other sockets of this user
        await self.close(code=message["code"])
