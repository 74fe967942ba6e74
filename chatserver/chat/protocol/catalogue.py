"""The event catalogue: every client event and every server event, defined once.

A client event has its rate class, its handler (``module.function`` in chat/handlers/, resolved
into the handler table when that package loads) and its writable fields with their validators.
A server event has its name (the constant the code sends it by) and the schema of its payload.
docs/protocol.md documents exactly these events; tests/chat/test_protocol_doc.py checks the doc
against this module, and the chat tests check every frame they receive with check_server_frame.
"""

import json
from dataclasses import dataclass, field

from .codes import ERROR_CODES, ERROR_UNKNOWN_EVENT
from .schema import (
    BOOL,
    ID,
    INT,
    NULL,
    STR,
    TIME,
    Dict,
    Enum,
    IdMap,
    List,
    Nullable,
    OneOf,
    SchemaError,
    Type,
)
from .validation import (
    DISCOVER_MAX_LIMIT,
    MAX_ID,
    MAX_LIST_ITEMS,
    SEARCH_MAX_LENGTH,
    ProtocolError,
    bool_field,
    choice_field,
    cursor_map_field,
    datetime_field,
    emoji_field,
    id_field,
    ids_field,
    ids_or_empty_field,
    int_field,
    invalid,
    search_field,
    text_field,
)

# -- client events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientEvent:
    """One client event: its rate-limit class, its handler, its writable fields (validator,
    required), and whether the consumer reads on while it is answered (``pipelined``)."""

    name: str
    rate_class: str
    handler: str
    fields: dict = field(default_factory=dict)
    pipelined: bool = False

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


def _event(event_name, rate_class, handler, /, pipelined=False, **fields):
    return ClientEvent(event_name, rate_class, handler, fields, pipelined)


REQUIRED, OPTIONAL = True, False
_room = (id_field, REQUIRED)
_name = text_field("MAX_NAME_LENGTH")
_description = text_field("MAX_DESCRIPTION_LENGTH", blank=True)
_member_limit = int_field(2, "MAX_MEMBER_LIMIT")
# What room.create sets and room.modify (action "update") changes.
_ROOM_SETTINGS = {
    "name": (_name, OPTIONAL),
    "description": (_description, OPTIONAL),
    "is_public": (bool_field, OPTIONAL),
    "locked": (bool_field, OPTIONAL),
    "member_limit": (_member_limit, OPTIONAL),
}

CLIENT_EVENTS = {
    event.name: event
    for event in [
        _event("session.heartbeat", "read", "session.heartbeat"),
        _event(
            "session.resume",
            "read",
            "session.resume",
            rooms=(cursor_map_field("RESUME_MAX_ROOMS"), REQUIRED),
        ),
        _event(
            "room.create",
            "manage",
            "rooms.create",
            type=(choice_field("direct", "group", "channel"), REQUIRED),
            members=(ids_or_empty_field, OPTIONAL),
            **_ROOM_SETTINGS,
        ),
        _event(
            "room.list",
            "read",
            "rooms.list_rooms",
            limit=(int_field(1, 100), OPTIONAL),
            before=(text_field(64), OPTIONAL),
        ),
        _event("room.info", "read", "rooms.info", room_id=_room),
        _event(
            "room.messages",
            "read",
            "rooms.history",
            room_id=_room,
            before=(int_field(1, MAX_ID), OPTIONAL),
            after=(int_field(0, MAX_ID), OPTIONAL),
            limit=(int_field(1, 100), OPTIONAL),
        ),
        _event("room.join", "manage", "rooms.join", room_id=_room),
        _event("room.leave", "manage", "rooms.leave", room_id=_room),
        _event(
            "room.add_members",
            "manage",
            "rooms.add_members",
            room_id=_room,
            members=(ids_field, REQUIRED),
        ),
        _event(
            "room.remove_members",
            "manage",
            "rooms.remove_members",
            room_id=_room,
            members=(ids_field, REQUIRED),
        ),
        _event(
            "room.modify",
            "manage",
            "rooms.modify",
            room_id=_room,
            action=(choice_field("update", "delete", "add_admin", "remove_admin"), REQUIRED),
            **_ROOM_SETTINGS,
            members=(ids_field, OPTIONAL),
        ),
        _event(
            "message.send",
            "send",
            "messages.send",
            pipelined=True,  # answered with ChatConsumer.later: the next frame is read meanwhile
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
            "messages.modify",
            message_id=(id_field, REQUIRED),
            action=(choice_field("update", "delete"), REQUIRED),
            content=(text_field("MAX_MESSAGE_LENGTH"), OPTIONAL),
        ),
        _event(
            "message.react",
            "send",
            "messages.react",
            message_id=(id_field, REQUIRED),
            action=(choice_field("add", "remove"), REQUIRED),
            emoji=(emoji_field, REQUIRED),
        ),
        _event(
            "room.mute",
            "manage",
            "moderation.mute",
            room_id=_room,
            user_id=(id_field, REQUIRED),
            until=(datetime_field, OPTIONAL),
            seconds=(int_field(1, 366 * 24 * 3600), OPTIONAL),
        ),
        _event(
            "room.unmute",
            "manage",
            "moderation.unmute",
            room_id=_room,
            user_id=(id_field, REQUIRED),
        ),
        _event("presence.subscribe", "read", "presence.subscribe", room_id=(id_field, OPTIONAL)),
        _event("presence.unsubscribe", "read", "presence.unsubscribe"),
        _event("presence.hide", "manage", "presence.hide", hidden=(bool_field, OPTIONAL)),
        _event("user.block", "manage", "users.block", user_id=(id_field, REQUIRED)),
        _event("user.unblock", "manage", "users.unblock", user_id=(id_field, REQUIRED)),
        _event("user.search", "read", "users.search", query=(search_field, REQUIRED)),
        _event(
            "room.discover",
            "read",
            "discovery.discover",
            query=(text_field(SEARCH_MAX_LENGTH, blank=True), OPTIONAL),
            limit=(int_field(1, DISCOVER_MAX_LIMIT), OPTIONAL),
            before=(text_field(64), OPTIONAL),
        ),
        _event(
            "message.read",
            "read",
            "messages.read",
            rooms=(cursor_map_field(MAX_LIST_ITEMS), REQUIRED),
        ),
        _event(
            "message.acknowledged",
            "read",
            "messages.acknowledged",
            rooms=(cursor_map_field(MAX_LIST_ITEMS), REQUIRED),
        ),
        _event(
            "message.typing",
            "typing",
            "messages.typing",
            room_id=_room,
            state=(choice_field("start", "stop"), OPTIONAL),
        ),
    ]
}


def client_event(event_type):
    """The ClientEvent named ``event_type``; unknown names are error 4007."""
    try:
        return CLIENT_EVENTS[event_type]
    except KeyError:
        raise ProtocolError(ERROR_UNKNOWN_EVENT, f"Unknown event_type {event_type!r}.") from None


# -- payload objects (docs/protocol.md, "Payload objects") -----------------------------------

USER = Dict({"id": ID, "username": STR, "display_name": STR})
ROLE = Enum("owner", "admin", "member")
MEMBER = USER.extend({"role": ROLE, "joined_at": TIME, "last_read_seq": INT})
ROOM = Dict(
    {
        "id": ID,
        "type": Enum("direct", "group", "channel"),
        "name": STR,
        "description": STR,
        "is_public": BOOL,
        "locked": BOOL,
        "member_limit": INT,
        "last_seq": INT,
        "created_at": TIME,
    }
)
MESSAGE = Dict(
    {
        "id": ID,
        "room_id": ID,
        "seq": INT,
        "kind": Enum("text", "system"),
        "author": Nullable(USER),
        "content": Nullable(STR),
        "client_msg_id": Nullable(STR),
        "parent_message_id": Nullable(ID),
        "forwarded_from_id": Nullable(ID),
        "is_edited": BOOL,
        "is_deleted": BOOL,
        "created_at": TIME,
        "edited_at": Nullable(TIME),
        "reactions": List(Dict({"emoji": STR, "user_ids": List(ID)})),
    }
)
HARD_DELETED_MESSAGE = Dict({"id": ID, "room_id": ID, "is_deleted": Enum(True), "content": NULL})
ANY_MESSAGE = OneOf(MESSAGE, HARD_DELETED_MESSAGE)
ROOM_SUMMARY = ROOM.extend(  # room.list and chat.notifications
    {
        "role": ROLE,
        "member_count": INT,
        "unread_count": INT,
        "last_read_seq": INT,
        "last_message": Nullable(MESSAGE),
        "peer": Nullable(USER),
    }
)
SEQ = INT  # a room event's place in its room's log
NO_SEQ = Nullable(INT)  # null on a reply that changed nothing


# -- server events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerEvent:
    """One server event: its payload schema, under ``body`` ("data", or "error" for errors),
    and whether it is a room event (logged with a seq, replayed by session.resume)."""

    name: str
    schema: Type
    room_event: bool = False
    body: str = "data"


SERVER_EVENTS = {}


def _server_event(name, schema, room_event=False, body="data"):
    SERVER_EVENTS[name] = ServerEvent(name, schema, room_event, body)
    return name


class _ReplayedFrame(Type):
    """A room event inside a session.resume answer, checked against its own schema."""

    def check(self, value, path="data"):
        if not isinstance(value, dict) or set(value) != {"eventType", "data"}:
            raise SchemaError(f"{path}: {value!r} is not an {{eventType, data}} frame")
        event = SERVER_EVENTS.get(value["eventType"])
        if event is None or not event.room_event:
            raise SchemaError(f"{path}.eventType: {value['eventType']!r} is not a room event")
        event.schema.check(value["data"], f"{path}.data")


HEARTBEAT = _server_event(
    "session.heartbeat", Dict({"server_time": TIME, "inactivity_threshold": INT})
)
RESUME = _server_event(
    "session.resume",
    Dict(
        {
            "rooms": IdMap(
                Dict(
                    {
                        "events": List(_ReplayedFrame()),
                        "limited": BOOL,
                        "next_after": INT,
                        "last_seq": INT,
                    }
                )
            ),
            "missing": List(ID),
            "has_more": BOOL,
        }
    ),
)
NOTIFICATIONS = _server_event(
    "chat.notifications", Dict({"rooms": List(ROOM_SUMMARY), "has_more": BOOL})
)
MESSAGE_CREATED = _server_event(
    "message.dispatch",
    Dict({"room_id": ID, "seq": SEQ, "message": ANY_MESSAGE}, {"duplicate": BOOL}),
    room_event=True,
)
MESSAGE_MODIFIED = _server_event(
    "messagemodification.dispatch",
    Dict({"room_id": ID, "seq": SEQ, "action": Enum("update", "delete"), "message": ANY_MESSAGE}),
    room_event=True,
)
REACTION = _server_event(
    "reaction.dispatch",
    Dict(
        {
            "room_id": ID,
            "seq": NO_SEQ,
            "message_id": ID,
            "action": Enum("add", "remove"),
            "emoji": STR,
            "user": USER,
            "changed": BOOL,
        }
    ),
    room_event=True,
)
READ_RECEIPT = _server_event(
    "readreceipt.dispatch",
    Dict({"user": USER, "receipts": List(Dict({"room_id": ID, "last_read_seq": INT}))}),
)
DELIVERED = _server_event(
    "messagedelivered.dispatch",
    Dict({"user": USER, "receipts": List(Dict({"room_id": ID, "last_delivered_seq": INT}))}),
)
TYPING = _server_event(
    "messagetyping.dispatch",
    Dict({"room_id": ID, "user": USER, "state": Enum("start", "stop")}),
)
ROOM_CREATED = _server_event(
    "roomcreate.dispatch",
    OneOf(
        # A new room: its members as they were added (no joined_at), and who created it.
        Dict(
            {
                "room_id": ID,
                "seq": SEQ,
                "room": ROOM,
                "members": List(USER.extend({"role": ROLE, "last_read_seq": INT})),
                "created_by": USER,
            }
        ),
        # The one-to-one room existed already: it as roominfo.dispatch describes it, no seq.
        Dict({"room_id": ID, "seq": NULL, "room": ROOM, "members": List(MEMBER)}),
    ),
    room_event=True,
)
ROOM_LIST = _server_event(
    "roomlist.dispatch",
    Dict({"rooms": List(ROOM_SUMMARY), "has_more": BOOL, "next_before": Nullable(STR)}),
)
ROOM_INFO = _server_event("roominfo.dispatch", Dict({"room": ROOM, "members": List(MEMBER)}))
ROOM_MESSAGES = _server_event(
    "roommessages.dispatch",
    Dict({"room_id": ID, "messages": List(MESSAGE), "has_more": BOOL}),
)
MEMBERS_ADDED = _server_event(
    "roomaddmembers.dispatch",
    Dict({"room_id": ID, "seq": SEQ, "members": List(USER), "added_by": USER}),
    room_event=True,
)
MEMBERS_REMOVED = _server_event(
    "roomremovemembers.dispatch",
    Dict(
        {"room_id": ID, "seq": SEQ, "members": List(USER), "removed_by": USER},
        {"new_owner": USER},
    ),
    room_event=True,
)
ROOM_EXIT = _server_event(
    "roomexit.dispatch", Dict({"room_id": ID, "seq": SEQ, "removed_by": USER})
)
ROOM_DELETED = _server_event(
    "roomdelete.dispatch", Dict({"room_id": ID, "deleted_by": Nullable(USER)})
)
ROOM_UPDATED = _server_event(
    "roomupdate.dispatch",
    Dict(
        {
            "room_id": ID,
            "seq": SEQ,
            "room": ROOM,
            "changes": Dict(
                optional={
                    "name": STR,
                    "description": STR,
                    "is_public": BOOL,
                    "locked": BOOL,
                    "member_limit": INT,
                    "admins_added": List(USER),
                    "admins_removed": List(USER),
                }
            ),
            "updated_by": USER,
        }
    ),
    room_event=True,
)
USER_BLOCK = _server_event(
    "userblock.dispatch", Dict({"user_id": ID, "blocked": BOOL, "changed": BOOL})
)
ROOM_MUTE = _server_event(
    "roommute.dispatch",
    Dict(
        {
            "room_id": ID,
            "seq": NO_SEQ,
            "user": USER,
            "muted_until": Nullable(TIME),
            "by": USER,
        }
    ),
    room_event=True,
)
PRESENCE = _server_event(
    "presence.dispatch",
    Dict(
        {
            "users": List(
                Dict(
                    {
                        "user_id": ID,
                        "status": Enum("online", "away", "offline"),
                        "last_seen": Nullable(TIME),
                    }
                )
            )
        }
    ),
)
PRESENCE_SETTING = _server_event("presencesetting.dispatch", Dict({"hidden": BOOL}))
USER_SEARCH = _server_event("usersearch.dispatch", Dict({"query": STR, "users": List(USER)}))
ROOM_DISCOVER = _server_event(
    "roomdiscover.dispatch",
    Dict(
        {
            "rooms": List(ROOM.extend({"member_count": INT, "is_member": BOOL})),
            "has_more": BOOL,
            "next_before": Nullable(STR),
        }
    ),
)
ERROR = _server_event(
    "error",
    Dict({"code": Enum(*ERROR_CODES), "detail": STR, "event_type": Nullable(STR)}),
    body="error",
)


def check_server_frame(frame):
    """Check one server frame (JSON text or decoded) against its event's schema; raises
    SchemaError. For tests: production never pays for it."""
    if isinstance(frame, str):
        frame = json.loads(frame)
    if not isinstance(frame, dict):
        raise SchemaError(f"frame {frame!r} is not an object")
    event = SERVER_EVENTS.get(frame.get("eventType"))
    if event is None:
        raise SchemaError(f"eventType {frame.get('eventType')!r} is not a server event")
    unknown = sorted(set(frame) - {"eventType", event.body, "request_id"})
    if unknown or event.body not in frame:
        raise SchemaError(f"{event.name} frame has keys {sorted(frame)}")
    if "request_id" in frame and not isinstance(frame["request_id"], str):
        raise SchemaError(f"{event.name}: request_id {frame['request_id']!r} is not a string")
    event.schema.check(frame[event.body], event.body)
