"""WebSocket routes of the chat application, wrapped in authentication.

``EXTRA_WEBSOCKET_ROUTES`` (``[(path, consumer dotted path)]``) adds routes for test settings
only: the conformance settings' echo route.
"""

from channels.routing import URLRouter
from django.conf import settings
from django.urls import path
from django.utils.module_loading import import_string

from .auth import TokenAuthMiddlewareStack
from .consumers import ChatConsumer

websocket_urlpatterns = [path("messaging/", ChatConsumer.as_asgi())] + [
    path(route, import_string(consumer).as_asgi())
    for route, consumer in getattr(settings, "EXTRA_WEBSOCKET_ROUTES", ())
]

websocket_application = TokenAuthMiddlewareStack(URLRouter(websocket_urlpatterns))
