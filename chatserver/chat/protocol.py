"""The WebSocket protocol contract: envelope, every event name, payload validation, codes.

Client frames look like ``{"event_type": str, "data": object, "request_id": str?}``; server
frames like ``{"eventType": str, "data": object, "request_id"?: str}``. docs/protocol.md documents
every name defined here, and tests/chat/test_protocol_doc.py keeps the two in step.
"""

import json
import re
from dataclasses import dataclass, field
from datetime import datetime

import emoji

from .conf import option

# Error codes carried in {"eventType": "error", "error": {"code": ...}}; the socket stays open.
ERROR_MALFORMED = 4000
ERROR_PERMISSION_DENIED = 4002
ERROR_VALIDATION = 4003
ERROR_NOT_FOUND = 4004
ERROR_CONFLICT = 4005
ERROR_INTERNAL = 4006
ERROR_UNKNOWN_EVENT = 4007
ERROR_RATE_LIMITED = 4029
ERROR_UNAVAILABLE = 4503  # the database cannot be reached now: retry (same client_msg_id)

ERROR_CODES = {
    ERROR_MALFORMED: "malformed frame",
    ERROR_PERMISSION_DENIED: "permission denied",
    ERROR_VALIDATION: "validation error",
    ERROR_NOT_FOUND: "not found",
    ERROR_CONFLICT: "conflict",
    ERROR_INTERNAL: "internal error",
    ERROR_UNKNOWN_EVENT: "unknown event",
    ERROR_RATE_LIMITED: "rate limited",
    ERROR_UNAVAILABLE: "temporarily unavailable",
}

# WebSocket close codes.
CLOSE_GOING_AWAY = 1001  # server shutdown: reconnect to another process or later
CLOSE_TOO_BIG = 1009  # frame over the size limit
CLOSE_SLOW_READER = 1013  # the daemon held MAX_SEND_BUFFER_BYTES unsent: reconnect and resume
CLOSE_UNAUTHENTICATED = 4001  # sent after accept so clients can read it
CLOSE_SERVER_REQUEST = 4400  # an operator disconnected the user (manhole)
CLOSE_HEARTBEAT_EXPIRED = 4408  # no session.heartbeat within INACTIVITY_THRESHOLD
CLOSE_TOO_MANY_SOCKETS = 4409  # the user has MAX_SOCKETS_PER_USER sockets open already
CLOSE_TOO_MANY_CONNECTIONS = 4429  # connecting too fast, per user or per client address

CLOSE_CODES = {
    CLOSE_GOING_AWAY: "server shutting down",
    CLOSE_TOO_BIG: "frame too big",
    CLOSE_SLOW_READER: "reading too slowly",
    CLOSE_UNAUTHENTICATED: "unauthenticated",
    CLOSE_SERVER_REQUEST: "disconnected by an operator",
    CLOSE_HEARTBEAT_EXPIRED: "heartbeat expired",
    CLOSE_TOO_MANY_SOCKETS: "too many sockets",
    CLOSE_TOO_MANY_CONNECTIONS: "too many connections",
}

REQUEST_ID_MAX_LENGTH = 128
MAX_ID = 2**63 - 1
MAX_LIST_ITEMS = 100


class ProtocolError(Exception):
    """A request the server refuses; turned into one error frame by the consumer."""

    def __init__(self, code, detail):
        super().__init__(detail)
        self.code = code
        self.detail = detail


def invalid(detail):
    return ProtocolError(ERROR_VALIDATION, detail)


# -- field validators: each takes (name, value) and returns the cleaned value ---------------


def _limit(value):
    """A limit given as a number or as the name of an option (read when validating)."""
    return option(value) if isinstance(value, str) else value


def is_ascii_number(text):
    """Digits 0-9 only: ``str.isdigit`` also takes "²" and "١", which ``int()`` then refuses or
    reads as another number, and ``int()`` alone takes " 1", "+1" and "1_0"."""
    return text.isascii() and text.isdigit()


def id_field(name, value):
    """A positive integer id; digit strings are accepted because JSON object keys are strings."""
    if isinstance(value, str) and is_ascii_number(value) and len(value) <= 19:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise invalid(f"'{name}' must be a positive integer id.")
    return value


def ids_field(name, value, allow_empty=False):
    """A list of distinct ids (order kept), at most MAX_LIST_ITEMS long."""
    if not isinstance(value, list) or not (value or allow_empty):
        raise invalid(f"'{name}' must be a non-empty list of ids.")
    if len(value) > MAX_LIST_ITEMS:
        raise invalid(f"'{name}' holds at most {MAX_LIST_ITEMS} ids.")
    return list(dict.fromkeys(id_field(name, item) for item in value))


def ids_or_empty_field(name, value):
    return ids_field(name, value, allow_empty=True)


# What no database column can hold: PostgreSQL text refuses U+0000, and an unpaired surrogate
# (a JSON escape such as "\ud800" alone) has no UTF-8 form. Stored in a batch, either would
# fail the whole batch, other users' messages with it.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_field(max_length, blank=False):
    def check(name, value):
        limit = _limit(max_length)
        if not isinstance(value, str):
            raise invalid(f"'{name}' must be a string.")
        if _UNSTORABLE.search(value):
            raise invalid(f"'{name}' must not contain U+0000 or unpaired surrogates.")
        if not blank and not value.strip():
            raise invalid(f"'{name}' must not be blank.")
        if len(value) > limit:
            raise invalid(f"'{name}' is longer than {limit} characters.")
        return value

    return check


def emoji_field(name, value):
    """Exactly one emoji (one grapheme cluster: skin tones, ZWJ sequences and flags count as
    one), as the ``emoji`` package's Unicode tables know them; nothing else is a reaction."""
    text_field(32)(name, value)
    if not emoji.is_emoji(value):
        raise invalid(f"'{name}' must be exactly one emoji.")
    return value


def bool_field(name, value):
    if not isinstance(value, bool):
        raise invalid(f"'{name}' must be true or false.")
    return value


def int_field(minimum, maximum):
    def check(name, value):
        top = _limit(maximum)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= top:
            raise invalid(f"'{name}' must be an integer from {minimum} to {top}.")
        return value

    return check


def datetime_field(name, value):
    """An ISO 8601 date and time with its UTC offset ("2030-01-01T12:00:00+00:00" or "...Z")."""
    if not isinstance(value, str) or len(value) > 40:
        raise invalid(f"'{name}' must be an ISO 8601 date and time with a UTC offset.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.utcoffset() is None:
        raise invalid(f"'{name}' must be an ISO 8601 date and time with a UTC offset.")
    return parsed


def choice_field(*choices):
    def check(name, value):
        if value not in choices:
            raise invalid(f"'{name}' must be one of {', '.join(choices)}.")
        return value

    return check


def cursor_map_field(max_items):
    """``{"<room_id>": <seq>, ...}``: the shape of session.resume, message.read and acks."""

    def check(name, value):
        top = _limit(max_items)
        if not isinstance(value, dict) or not value:
            raise invalid(f"'{name}' must be a non-empty object of room id to seq.")
        if len(value) > top:
            raise invalid(f"'{name}' holds at most {top} rooms.")
        seq = int_field(0, MAX_ID)
        return {id_field(name, key): seq(f"{name}.{key}", item) for key, item in value.items()}

    return check


SEARCH_MIN_LENGTH = 2
SEARCH_MAX_LENGTH = 100
DISCOVER_MAX_LIMIT = 50


def search_field(name, value):
    """A search prefix: at least SEARCH_MIN_LENGTH characters once blanks are trimmed, so one
    letter cannot page through the whole user table."""
    value = text_field(SEARCH_MAX_LENGTH)(name, value).strip()
    if len(value) < SEARCH_MIN_LENGTH:
        raise invalid(f"'{name}' needs at least {SEARCH_MIN_LENGTH} characters.")
    return value


# -- events ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientEvent:
    """One client event: its writable fields (validator, required) and its rate-limit class."""

    name: str
    rate_class: str
    fields: dict = field(default_factory=dict)

    def clean(self, data):
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise invalid(f"Unknown field(s) for {self.name}: {', '.join(unknown)}.")
        cleaned = {}
        for name, (check, required) in self.fields.items():
            if name not in data or data[name] is None:
                if required:
                    raise invalid(f"'{name}' is required.")
                continue
            cleaned[name] = check(name, data[name])
        return cleaned


def _event(event_name, rate_class, /, **fields):
    return ClientEvent(event_name, rate_class, fields)


REQUIRED, OPTIONAL = True, False
_room = (id_field, REQUIRED)
_name = text_field("MAX_NAME_LENGTH")
_description = text_field("MAX_DESCRIPTION_LENGTH", blank=True)
_member_limit = int_field(2, "MAX_MEMBER_LIMIT")

CLIENT_EVENTS = {
    event.name: event
    for event in [
        _event("session.heartbeat", "read"),
        _event("session.resume", "read", rooms=(cursor_map_field("RESUME_MAX_ROOMS"), REQUIRED)),
        _event(
            "room.create",
            "manage",
            type=(choice_field("direct", "group", "channel"), REQUIRED),
            members=(ids_or_empty_field, OPTIONAL),
            name=(_name, OPTIONAL),
            description=(_description, OPTIONAL),
            is_public=(bool_field, OPTIONAL),
            locked=(bool_field, OPTIONAL),
            member_limit=(_member_limit, OPTIONAL),
        ),
        _event(
            "room.list",
            "read",
            limit=(int_field(1, 100), OPTIONAL),
            before=(text_field(64), OPTIONAL),
        ),
        _event("room.info", "read", room_id=_room),
        _event(
            "room.messages",
            "read",
            room_id=_room,
            before=(int_field(1, MAX_ID), OPTIONAL),
            after=(int_field(0, MAX_ID), OPTIONAL),
            limit=(int_field(1, 100), OPTIONAL),
        ),
        _event("room.join", "manage", room_id=_room),
        _event("room.leave", "manage", room_id=_room),
        _event("room.add_members", "manage", room_id=_room, members=(ids_field, REQUIRED)),
        _event("room.remove_members", "manage", room_id=_room, members=(ids_field, REQUIRED)),
        _event(
            "room.modify",
            "manage",
            room_id=_room,
            action=(
                choice_field("update", "delete", "add_admin", "remove_admin"),
                REQUIRED,
            ),
            name=(_name, OPTIONAL),
            description=(_description, OPTIONAL),
            is_public=(bool_field, OPTIONAL),
            locked=(bool_field, OPTIONAL),
            member_limit=(_member_limit, OPTIONAL),
            members=(ids_field, OPTIONAL),
        ),
        _event(
            "message.send",
            "send",
            room_id=_room,
            # Required unless forwarding (a forward copies the source's content).
            content=(text_field("MAX_MESSAGE_LENGTH"), OPTIONAL),
            client_msg_id=(text_field(64), OPTIONAL),
            parent_message_id=(id_field, OPTIONAL),
            forwarded_from_id=(id_field, OPTIONAL),
        ),
        _event(
            "message.modify",
            "send",
            message_id=(id_field, REQUIRED),
            action=(choice_field("update", "delete"), REQUIRED),
            content=(text_field("MAX_MESSAGE_LENGTH"), OPTIONAL),
        ),
        _event(
            "message.react",
            "send",
            message_id=(id_field, REQUIRED),
            action=(choice_field("add", "remove"), REQUIRED),
            emoji=(emoji_field, REQUIRED),
        ),
        _event(
            "room.mute",
            "manage",
            room_id=_room,
            user_id=(id_field, REQUIRED),
            until=(datetime_field, OPTIONAL),
            seconds=(int_field(1, 366 * 24 * 3600), OPTIONAL),
        ),
        _event("room.unmute", "manage", room_id=_room, user_id=(id_field, REQUIRED)),
        _event("presence.subscribe", "read", room_id=(id_field, OPTIONAL)),
        _event("presence.unsubscribe", "read"),
        _event("presence.hide", "manage", hidden=(bool_field, OPTIONAL)),
        _event("user.block", "manage", user_id=(id_field, REQUIRED)),
        _event("user.unblock", "manage", user_id=(id_field, REQUIRED)),
        _event("user.search", "read", query=(search_field, REQUIRED)),
        _event(
            "room.discover",
            "read",
            query=(text_field(SEARCH_MAX_LENGTH, blank=True), OPTIONAL),
            limit=(int_field(1, DISCOVER_MAX_LIMIT), OPTIONAL),
            before=(text_field(64), OPTIONAL),
        ),
        _event("message.read", "read", rooms=(cursor_map_field(MAX_LIST_ITEMS), REQUIRED)),
        _event("message.acknowledged", "read", rooms=(cursor_map_field(MAX_LIST_ITEMS), REQUIRED)),
        _event(
            "message.typing",
            "typing",
            room_id=_room,
            state=(choice_field("start", "stop"), OPTIONAL),
        ),
    ]
}

# Server events: broadcasts and replies. ``error`` frames have their own shape (see encode_error).
SERVER_EVENTS = (
    "session.heartbeat",
    "session.resume",
    "chat.notifications",
    "message.dispatch",
    "messagemodification.dispatch",
    "reaction.dispatch",
    "readreceipt.dispatch",
    "messagedelivered.dispatch",
    "messagetyping.dispatch",
    "roomcreate.dispatch",
    "roomlist.dispatch",
    "roominfo.dispatch",
    "roommessages.dispatch",
    "roomaddmembers.dispatch",
    "roomremovemembers.dispatch",
    "roomexit.dispatch",
    "roomdelete.dispatch",
    "roomupdate.dispatch",
    "userblock.dispatch",
    "roommute.dispatch",
    "presence.dispatch",
    "presencesetting.dispatch",
    "usersearch.dispatch",
    "roomdiscover.dispatch",
    "error",
)


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


def client_event(event_type):
    """The ClientEvent named ``event_type``; unknown names are error 4007."""
    try:
        return CLIENT_EVENTS[event_type]
    except KeyError:
        raise ProtocolError(ERROR_UNKNOWN_EVENT, f"Unknown event_type {event_type!r}.") from None


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


def encoded_size(data):
    """Bytes ``data`` takes in a frame (JSON escapes non-ASCII, so characters are bytes)."""
    return len(json.dumps(data, separators=(",", ":"), default=str))


def with_request_id(text, request_id):
    """A frame encoded once for broadcast, answering one request: splice the request_id in."""
    if request_id is None:
        return text
    return f'{text[:-1]},"request_id":{json.dumps(request_id)}}}'


def encode_error(code, detail, event_type=None, request_id=None):
    frame = {
        "eventType": "error",
        "error": {"code": code, "detail": detail, "event_type": event_type},
    }
    if request_id is not None:
        frame["request_id"] = request_id
    return json.dumps(frame, separators=(",", ":"))
