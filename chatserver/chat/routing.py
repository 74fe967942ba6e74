"""WebSocket routes of the chat application, each wrapped in its authentication.

``EXTRA_WEBSOCKET_ROUTES`` (``[(path, consumer dotted path)]``) adds routes for test settings
only: the conformance settings' echo route.
"""

import logging

from channels.routing import URLRouter
from django.conf import settings
from django.urls import path, re_path
from django.utils.module_loading import import_string

from .auth.websocket import TokenAuthMiddlewareStack
from .consumers import ChatConsumer
from .limits.connect_limits import AddressConnectLimit

logger = logging.getLogger(__name__)


async def refuse_unknown_path(scope, receive, send):
    """A handshake to a path nobody serves: refused before accept (Daphne answers HTTP 403)
    with one INFO line, instead of Channels' "No route found" traceback and an HTTP 500."""
    message = await receive()
    if message["type"] == "websocket.connect":
        logger.info("WebSocket handshake to unknown path %s refused", scope.get("path"))
        await send({"type": "websocket.close"})


websocket_urlpatterns = [
    path(
        "messaging/",
        AddressConnectLimit(TokenAuthMiddlewareStack(ChatConsumer.as_asgi())),
    ),
    *(
        path(route, import_string(consumer).as_asgi())
        for route, consumer in getattr(settings, "EXTRA_WEBSOCKET_ROUTES", ())
    ),
]

websocket_application = URLRouter([*websocket_urlpatterns, re_path(r"", refuse_unknown_path)])
