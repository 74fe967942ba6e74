"""Exports as JSON Lines: one room's history, or everything about one user (a data-subject
request). Used by the ``export-room`` and ``export-user`` management commands.

Every query is streamed (``QuerySet.iterator``: a server-side cursor on PostgreSQL, chunks on
SQLite) and every row written as soon as it is read (messages a chunk at a time, with that
chunk's reactions), so memory stays flat whatever the size of the room.
"""

import json

from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef
from django.utils import timezone

from ..models import (
    Block,
    Membership,
    Message,
    Mute,
    PresenceSetting,
    Reaction,
    Room,
    RoomEvent,
    Session,
)
from ..serializers import member_payload, message_payload, room_payload, user_payload
from ..services import eventlog

CHUNK_SIZE = 2000


class Lines:
    """Writes one JSON object per line to a text stream."""

    def __init__(self, stream):
        self.stream = stream
        self.count = 0

    def write(self, kind, data):
        # ``type`` names the line; payloads that have a ``type`` of their own (rooms) are nested.
        line = json.dumps({"type": kind, **data}, default=str, ensure_ascii=False)
        self.stream.write(line + "\n")  # one write: Django's OutputWrapper adds no second "\n"
        self.count += 1


def _stream(queryset, chunk_size=CHUNK_SIZE):
    return queryset.iterator(chunk_size=chunk_size)


def _messages(room_id):
    """A room's messages by seq, with their authors."""
    return Message.objects.filter(room_id=room_id).select_related("author").order_by("seq")


def _write_messages(lines, messages, chunk_size):
    """Write messages with their reactions: one reactions query per chunk of messages (the
    ORM's prefetch builds a queryset per message, which took most of an export's time)."""
    chunk = []
    for message in _stream(messages, chunk_size):
        chunk.append(message)
        if len(chunk) >= chunk_size:
            _write_chunk(lines, chunk)
            chunk = []
    _write_chunk(lines, chunk)


def _write_chunk(lines, chunk):
    if not chunk:
        return
    reactions = eventlog.reactions_of(m.pk for m in chunk)
    for message in chunk:
        lines.write("message", message_payload(message, reactions=reactions.get(message.pk, ())))


def _write_room_body(lines, room_id, chunk_size):
    """Messages (tombstones for deleted ones) and then the room's event log, both by seq."""
    _write_messages(lines, _messages(room_id), chunk_size)
    # Messages deleted for good (MESSAGE_SOFT_DELETE off) left their creation event only.
    gone = (
        RoomEvent.objects.filter(room_id=room_id, event_type=eventlog.MESSAGE_CREATED)
        .filter(~Exists(Message.objects.filter(pk=OuterRef("message_id"))))
        .order_by("seq")
    )
    for event in _stream(gone, chunk_size):
        lines.write("message", {"seq": event.seq, **_tombstone(event)})
    events = (
        RoomEvent.objects.filter(room_id=room_id)
        .order_by("seq")
        .values("room_id", "seq", "event_type", "message_id", "data", "created_at")
    )
    for event in _stream(events, chunk_size):
        event["created_at"] = event["created_at"].isoformat()
        lines.write("event", event)


def _tombstone(event):
    return {"id": event.message_id, "room_id": event.room_id, "is_deleted": True, "content": None}


def export_room(room, stream, chunk_size=CHUNK_SIZE):
    """The room, its members and mutes, its messages with reactions (deleted ones as
    tombstones) and its event log (edits, deletions, reactions, membership changes)."""
    lines = Lines(stream)
    lines.write("export", {"of": "room", "room_id": room.pk, "at": timezone.now().isoformat()})
    lines.write("room", {"room": room_payload(room)})
    members = Membership.objects.filter(room=room).select_related("user").order_by("pk")
    for membership in _stream(members, chunk_size):
        lines.write("member", member_payload(membership))
    for mute in _stream(Mute.objects.filter(room=room).order_by("pk"), chunk_size):
        until = mute.until.isoformat()
        lines.write("mute", {"user_id": mute.user_id, "until": until, "by": mute.muted_by_id})
    _write_room_body(lines, room.pk, chunk_size)
    return lines.count


def export_user(user, stream, chunk_size=CHUNK_SIZE):
    """What the server holds about a user: their account (without the password hash), presence
    setting, blocks, sessions, and for every room they are in the room, its members and every
    message they may see; then what they wrote in rooms they have left, and their reactions."""
    lines = Lines(stream)
    lines.write("export", {"of": "user", "user_id": user.pk, "at": timezone.now().isoformat()})
    lines.write(
        "user",
        {
            **user_payload(user),
            "email": user.email,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "date_joined": user.date_joined.isoformat(),
            "last_login": user.last_login.isoformat() if user.last_login else None,
            "is_active": user.is_active,
        },
    )
    setting = PresenceSetting.objects.filter(user=user).first()
    if setting is not None:
        last_seen = setting.last_seen.isoformat() if setting.last_seen else None
        lines.write("presence", {"hidden": setting.hidden, "last_seen": last_seen})
    for block in _stream(Block.objects.filter(blocker=user).order_by("pk"), chunk_size):
        lines.write("block", {"blocked": block.blocked_id, "at": block.created_at.isoformat()})
    sessions = Session.objects.filter(user=user).order_by("pk")
    for session in _stream(sessions.values("connected_at", "closed_at", "close_code"), chunk_size):
        lines.write("session", session)
    memberships = Membership.objects.filter(user=user).select_related("room").order_by("room_id")
    for membership in _stream(memberships, chunk_size):
        room = membership.room
        lines.write("room", {"room": room_payload(room), "membership": member_payload(membership)})
        others = Membership.objects.filter(room=room).select_related("user").order_by("pk")
        for other in _stream(others, chunk_size):
            lines.write("member", {"room_id": room.pk, **user_payload(other.user)})
        _write_messages(lines, _messages(room.pk), chunk_size)
    left_behind = (
        Message.objects.filter(author=user)
        .exclude(room__memberships__user=user)
        .select_related("author")
        .order_by("room_id", "seq")
    )
    _write_messages(lines, left_behind, chunk_size)
    reactions = Reaction.objects.filter(user=user).order_by("pk")
    for reaction in _stream(reactions, chunk_size):
        lines.write(
            "reaction",
            {
                "message_id": reaction.message_id,
                "emoji": reaction.emoji,
                "at": reaction.created_at.isoformat(),
            },
        )
    return lines.count


def find_room(room_id):
    return Room.objects.filter(pk=room_id).first()


def find_user(username):
    return get_user_model().objects.filter(username=username).first()
