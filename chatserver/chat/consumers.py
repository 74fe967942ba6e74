"""The multiplexed chat WebSocket at ``/messaging/``.

One consumer per socket. ``receive`` validates the envelope, looks the event up in one handler
table and turns every failure into one documented error frame; the socket stays open.
"""

import logging
import time

from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils import timezone

from . import sessions
from .conf import option
from .protocol import (
    CLOSE_UNAUTHENTICATED,
    ERROR_INTERNAL,
    ERROR_UNKNOWN_EVENT,
    ProtocolError,
    encode_error,
    encode_event,
    parse_frame,
    request_id_of,
)

logger = logging.getLogger(__name__)


def user_group(user_id):
    """The group every connection of one user joins: private replies reach all its devices."""
    return f"user.{user_id}"


class ChatConsumer(AsyncWebsocketConsumer):
    # event_type -> name of the coroutine method handling it: ``handler(frame)``.
    handlers = {
        "session.heartbeat": "handle_session_heartbeat",
    }

    user = None
    groups_joined = ()

    async def connect(self):
        # Accept first, then close with 4001: a close before accept reaches the client as a
        # failed handshake (HTTP 403) it cannot tell apart from a network error.
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        self.last_heartbeat = time.monotonic()
        await sessions.open_session(user, self.channel_name)
        await self.join_groups([user_group(user.pk)])
        await self.after_connect()

    async def after_connect(self):
        """Hook for work after the session is recorded (room groups, notifications)."""

    async def join_groups(self, groups):
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined = tuple(self.groups_joined) + tuple(groups)

    async def leave_groups(self, groups):
        for group in groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_joined = tuple(g for g in self.groups_joined if g not in set(groups))

    async def disconnect(self, code):
        if self.user is None:
            return
        await self.leave_groups(list(self.groups_joined))
        await sessions.close_session(self.channel_name, code)

    async def receive(self, text_data=None, bytes_data=None):
        frame = None
        try:
            frame = parse_frame(text_data, bytes_data)
            method = self.handlers.get(frame.event_type)
            if method is None:
                raise ProtocolError(
                    ERROR_UNKNOWN_EVENT, f"Unknown event_type {frame.event_type!r}."
                )
            await getattr(self, method)(frame)
        except ProtocolError as error:
            await self.send_error(error.code, error.detail, frame, text_data)
        except Exception:
            logger.exception("Unhandled error in %s", frame.event_type if frame else "frame")
            await self.send_error(ERROR_INTERNAL, "Internal server error.", frame, text_data)

    async def send_error(self, code, detail, frame=None, text_data=None):
        if frame is not None:
            event_type, request_id = frame.event_type, frame.request_id
        else:
            event_type, request_id = None, request_id_of(text_data)
        await self.send(text_data=encode_error(code, detail, event_type, request_id))

    async def reply(self, frame, event_type, data):
        """Answer the requesting connection only, echoing its request_id."""
        await self.send(text_data=encode_event(event_type, data, frame.request_id))

    # -- session events ------------------------------------------------------------------

    async def handle_session_heartbeat(self, frame):
        self.last_heartbeat = time.monotonic()
        alive = await sessions.touch_session(self.channel_name)
        if not alive:
            # The sweeper closed this session between two heartbeats: reopen it rather than
            # keep a socket that no longer counts as connected.
            await sessions.open_session(self.user, self.channel_name)
        await self.reply(
            frame,
            "session.heartbeat",
            {
                "server_time": timezone.now().isoformat(),
                "inactivity_threshold": option("INACTIVITY_THRESHOLD"),
            },
        )

    # -- channel-layer messages ----------------------------------------------------------

    async def session_close(self, message):
        """Sent by the heartbeat sweeper or an operator: close with the given code."""
        await self.close(code=message["code"])
