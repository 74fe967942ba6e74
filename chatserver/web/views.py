"""The page that loads the web client, with a Content-Security-Policy that allows no inline code.

The page is static apart from what the client builds with DOM calls; the policy keeps an
injected ``<script>`` or ``style=`` attribute from running even if something slipped through.
"""

from django.conf import settings
from django.shortcuts import render
from django.views.decorators.http import require_safe

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        # 'self' covers ws:// and wss:// to this host (CSP level 3).
        "connect-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


@require_safe
def index(request):
    response = render(
        request, "web/index.html", {"allow_signup": getattr(settings, "ALLOW_SIGNUP", False)}
    )
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response["Cache-Control"] = "no-cache"
    return response
