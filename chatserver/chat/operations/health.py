"""``GET /healthz`` and ``GET /readyz``, answered before Django's middleware stack.

``/healthz``: the process answers HTTP (nothing else is checked) → 200.
``/readyz``: the database and Redis answer (readiness.py) and the process is not draining →
200 with JSON, else 503 naming what failed. Cheap enough for a load balancer or an orchestrator
to poll every few seconds, and the same under twistd, plain ``daphne`` and ``uvicorn``.
"""

import json

from . import readiness

HEALTH_PATHS = ("/healthz", "/readyz")


class HealthEndpoints:
    """ASGI middleware: the two health paths here, every other request to ``application``."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in HEALTH_PATHS:
            return await self.application(scope, receive, send)
        if scope["method"] not in ("GET", "HEAD"):
            return await respond(send, scope, 405, {"error": "method not allowed"})
        if scope["path"] == "/healthz":
            return await respond(send, scope, 200, {"status": "alive"})
        if readiness.is_draining():
            return await respond(send, scope, 503, {"status": "draining", "failed": []})
        results = await readiness.probe()
        failed = readiness.failed(results)
        checks = {name: problem or "ok" for name, problem in results.items()}
        if failed:
            body = {"status": "unavailable", "failed": failed, "checks": checks}
            return await respond(send, scope, 503, body)
        return await respond(send, scope, 200, {"status": "ready", "checks": checks})


async def respond(send, scope, status, body):
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if status == 405:
        headers.append((b"allow", b"GET, HEAD"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send(
        {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else payload}
    )
