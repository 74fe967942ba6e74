"""Development settings plus a ``/echo/`` WebSocket route, for the WebSocket conformance run
(``make conformance``) and the echo tests. Never for production: the echo route answers anyone.

Any Origin (or none, as the test suite's client sends) is accepted, and a socket may hold far
more unsent than in production: the suite echoes messages of up to 16 MiB.
"""

from .development import *  # noqa: F403
from .development import REALTIME_CHAT_MESSAGING

ALLOWED_HOSTS = ["*"]

EXTRA_WEBSOCKET_ROUTES = [("echo/", "chatserver.chat.echo.EchoConsumer")]

REALTIME_CHAT_MESSAGING = {**REALTIME_CHAT_MESSAGING, "MAX_SEND_BUFFER_BYTES": 256 * 1024 * 1024}
