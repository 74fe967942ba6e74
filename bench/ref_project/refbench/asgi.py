"""The reference package's ASGI application, as its README wires it."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refbench.settings")
django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from realtime_chat_messaging.routing import websocket_urlpatterns  # noqa: E402

from refbench.auth import JWTQueryMiddlewareStack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": AllowedHostsOriginValidator(
            JWTQueryMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
