"""The ASGI application, the same under twistd, plain ``daphne`` and ``uvicorn``.

Django is set up before anything imports models; WebSockets pass the Origin check
(chat/auth/origins.py) before authentication and routing. ``/healthz`` and ``/readyz`` are answered
before Django's middleware (chat/operations/health.py).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatserver.settings.development")

from django.core.asgi import get_asgi_application  # noqa: E402

django_http_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from chatserver.chat.auth.origins import origin_checked  # noqa: E402
from chatserver.chat.operations.health import HealthEndpoints  # noqa: E402
from chatserver.chat.routing import websocket_application  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": HealthEndpoints(django_http_application),
        "websocket": origin_checked(websocket_application),
    }
)
