"""The frame envelope: parse one client frame, encode server frames.

Client frames look like ``{"event_type": str, "data": object, "request_id": str?}``; server
frames like ``{"eventType": str, "data": object, "request_id"?: str}``, and error frames carry
``"error"`` instead of ``"data"``. This is the hot path: nothing here checks a payload against
its schema (the tests do, see catalogue.check_server_frame).
"""

import json
from dataclasses import dataclass, field

from .catalogue import ERROR, RESUME
from .codes import ERROR_MALFORMED
from .validation import ProtocolError

REQUEST_ID_MAX_LENGTH = 128
SEPARATORS = (",", ":")  # the most compact JSON
# json.dumps with options builds an encoder per call; every server frame goes through this one.
_encode = json.JSONEncoder(separators=SEPARATORS, default=str).encode


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
    return _encode(frame)


def encode_resume(rooms, missing, has_more, request_id=None):
    """The ``session.resume`` answer. Each room's ``events`` are frames of ``encode_event``
    already (a frame's length is its size in bytes: JSON escapes non-ASCII): a batch of resumes
    encodes each replayed event once, and every answer it appears in joins that text in rather
    than encoding it again."""
    states = ",".join(
        f"{json.dumps(str(room_id))}:"
        + _object(
            f'"events":[{",".join(state["events"])}]',
            {key: value for key, value in state.items() if key != "events"},
        )
        for room_id, state in rooms.items()
    )
    data = _object(f'"rooms":{{{states}}}', {"missing": missing, "has_more": has_more})
    return with_request_id(f'{{"eventType":"{RESUME}","data":{data}}}', request_id)


def _object(first, others):
    """A JSON object: the member ``first`` (JSON text already), then the members of ``others``."""
    rest = json.dumps(others, separators=SEPARATORS)
    return f"{{{first},{rest[1:]}" if others else f"{{{first}}}"


def encoded_size(data):
    """Bytes ``data`` takes in a frame (JSON escapes non-ASCII, so characters are bytes)."""
    return len(_encode(data))


def with_request_id(text, request_id):
    """A frame encoded once for broadcast, answering one request: splice the request_id in."""
    if request_id is None:
        return text
    return f'{text[:-1]},"request_id":{json.dumps(request_id)}}}'


def encode_error(code, detail, event_type=None, request_id=None):
    """One error frame as JSON text; ``event_type`` names the refused request, if known."""
    frame = {
        "eventType": ERROR,
        "error": {"code": code, "detail": detail, "event_type": event_type},
    }
    if request_id is not None:
        frame["request_id"] = request_id
    return json.dumps(frame, separators=SEPARATORS)
