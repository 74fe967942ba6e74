"""How fast sockets may be opened: per client address before authentication, per user after.

Every accepted socket costs a session row, group subscriptions and a connect's queries; one user
once opened 150 sockets in under a second. Both limits are token buckets of the rate limiter
(ratelimit.py: shared by every daemon through Redis, outliving sockets), in the ``connect_address``
and ``connect`` classes of ``RATE_LIMITS``. Past either, the socket is accepted and closed with
4429 (a close before accept would reach the client as an HTTP 403 it cannot tell from a refused
Origin), and the client backs off before trying again.
"""

import ipaddress
import logging

from ..protocol import CLOSE_TOO_MANY_CONNECTIONS
from .ratelimit import limiter

logger = logging.getLogger(__name__)


def client_address(scope):
    """The peer's address, or "" where it names no client of its own: a Unix socket, or a
    loopback address (a proxy on this host without ``--proxy-headers`` would put every client
    behind one address, and one bucket). With ``--proxy-headers`` Daphne puts nginx's
    X-Forwarded-For here."""
    client = scope.get("client")
    if not client or not client[0]:
        return ""
    try:
        if ipaddress.ip_address(client[0]).is_loopback:
            return ""
    except ValueError:
        pass
    return client[0]


def _address_key(address):
    return f"address:{address}"


async def user_may_connect(user_id):
    return await limiter.allow(user_id, "connect")


class AddressConnectLimit:
    """ASGI middleware in front of authentication: refuses handshakes from an address past its
    ``connect_address`` bucket without looking at their credentials."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        address = client_address(scope)
        if scope["type"] != "websocket" or not address:
            return await self.inner(scope, receive, send)
        if await limiter.allow(_address_key(address), "connect_address"):
            return await self.inner(scope, receive, send)
        logger.info("WebSocket from %s refused: connecting too fast", address)
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": CLOSE_TOO_MANY_CONNECTIONS})
