"""The WebSocket protocol contract: frame envelope, event names, error and close codes.

Client frames look like ``{"event_type": str, "data": object, "request_id": str?}``; server
frames like ``{"eventType": str, "data": object, "request_id"?: str}``. docs/protocol.md documents
every name defined here, and a test keeps the two in step.
"""

import json
from dataclasses import dataclass, field

# Error codes carried in {"eventType": "error", "error": {"code": ...}}; the socket stays open.
ERROR_MALFORMED = 4000
ERROR_PERMISSION_DENIED = 4002
ERROR_VALIDATION = 4003
ERROR_NOT_FOUND = 4004
ERROR_CONFLICT = 4005
ERROR_INTERNAL = 4006
ERROR_UNKNOWN_EVENT = 4007
ERROR_RATE_LIMITED = 4029

# WebSocket close codes.
CLOSE_GOING_AWAY = 1001  # server shutdown: reconnect to another process or later
CLOSE_TOO_BIG = 1009  # frame over the size limit
CLOSE_UNAUTHENTICATED = 4001  # sent after accept so clients can read it
CLOSE_SERVER_REQUEST = 4400  # an operator disconnected the user (manhole)
CLOSE_HEARTBEAT_EXPIRED = 4408  # no session.heartbeat within INACTIVITY_THRESHOLD

REQUEST_ID_MAX_LENGTH = 128


class ProtocolError(Exception):
    """A request the server refuses; turned into one error frame by the consumer."""

    def __init__(self, code, detail):
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class ClientFrame:
    event_type: str
    data: dict = field(default_factory=dict)
    request_id: str | None = None


def parse_frame(text_data=None, bytes_data=None):
    """Validate the envelope of one client frame; raise ProtocolError(4000) when it is off."""
    if text_data is None:
        raise ProtocolError(ERROR_MALFORMED, "Binary frames are not supported; send JSON text.")
    try:
        payload = json.loads(text_data)
    except (ValueError, RecursionError):
        raise ProtocolError(ERROR_MALFORMED, "Frame is not valid JSON.") from None
    if not isinstance(payload, dict):
        raise ProtocolError(ERROR_MALFORMED, "Frame must be a JSON object.")
    request_id = payload.get("request_id")
    if request_id is not None and (
        not isinstance(request_id, str) or len(request_id) > REQUEST_ID_MAX_LENGTH
    ):
        raise ProtocolError(
            ERROR_MALFORMED, f"request_id must be a string of at most {REQUEST_ID_MAX_LENGTH}."
        )
    event_type = payload.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise ProtocolError(ERROR_MALFORMED, "Frame needs a string 'event_type'.")
    data = payload.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProtocolError(ERROR_MALFORMED, "'data' must be a JSON object.")
    return ClientFrame(event_type=event_type, data=data, request_id=request_id)


def request_id_of(text_data):
    """Best-effort request_id of a frame that failed validation, to echo in the error."""
    try:
        payload = json.loads(text_data)
    except (TypeError, ValueError, RecursionError):
        return None
    if isinstance(payload, dict):
        candidate = payload.get("request_id")
        if isinstance(candidate, str) and len(candidate) <= REQUEST_ID_MAX_LENGTH:
            return candidate
    return None


def encode_event(event_type, data, request_id=None):
    """One server frame as JSON text."""
    frame = {"eventType": event_type, "data": data}
    if request_id is not None:
        frame["request_id"] = request_id
    return json.dumps(frame, separators=(",", ":"), default=str)


def encode_error(code, detail, event_type=None, request_id=None):
    frame = {
        "eventType": "error",
        "error": {"code": code, "detail": detail, "event_type": event_type},
    }
    if request_id is not None:
        frame["request_id"] = request_id
    return json.dumps(frame, separators=(",", ":"))
