"""WebSocket routes of the chat application, wrapped in authentication."""

from channels.routing import URLRouter
from django.urls import path

from .auth import TokenAuthMiddlewareStack
from .consumers import ChatConsumer

websocket_urlpatterns = [path("messaging/", ChatConsumer.as_asgi())]

websocket_application = TokenAuthMiddlewareStack(URLRouter(websocket_urlpatterns))
