"""Which pages may open the chat WebSocket: the Origin check in front of authentication.

Browsers attach the session cookie to a WebSocket handshake from any site, so without this check
a page elsewhere could chat as the logged-in user (cross-site WebSocket hijacking). Channels'
``AllowedHostsOriginValidator`` compares only the Origin's host with ``ALLOWED_HOSTS``: a page
served over plain HTTP, or on another port of the same host, passes. ``ALLOWED_ORIGINS`` lists
full origins instead, and Channels' ``OriginValidator`` then compares scheme, host and port.
"""

from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator
from django.conf import settings


def origin_checked(application):
    """``application`` behind the Origin check the settings ask for; a refused handshake gets
    HTTP 403."""
    origins = getattr(settings, "ALLOWED_ORIGINS", None)
    if origins:
        return OriginValidator(application, list(origins))
    return AllowedHostsOriginValidator(application)
