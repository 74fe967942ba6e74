"""Messages: send, history, edit/delete, reactions, read receipts and delivery acks.

Every write that is a room event takes the room's next seq in the same transaction; receipts and
acks are idempotent cursors (``max(old, new)``), not events.
"""

from django.db import transaction
from django.utils import timezone

from ..conf import option
from ..models import Membership, Message, Reaction
from ..protocol import (
    ERROR_CONFLICT,
    ERROR_PERMISSION_DENIED,
    REACTION,
    ProtocolError,
    encoded_size,
    invalid,
)
from ..serializers import deleted_message_payload, message_payload, user_payload
from ..storage import PORTABLE
from . import eventlog, permissions
from .rooms import not_found

_ORM = PORTABLE.messages  # an OrmMessageStore


def message_room(message_id):
    """The room id of a message, or None: handlers check access to that room first."""
    return Message.objects.filter(pk=message_id).values_list("room_id", flat=True).first()


def send_message(user, room_id, data):
    """Store one message; returns ``(frame_data, duplicate)`` or raises ProtocolError."""
    (outcome,) = send_messages([(user, room_id, data)])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def send_messages(requests):
    """Store a batch of ``(user, room_id, data)`` sends through the ORM, in this thread: one
    outcome per request (``storage.MessageStore.store_sends``). The daemon's sockets store
    through their event loop's store instead (chat/runtime.py); this serves set-ups and tests.
    """
    return _ORM.store_sends_now(requests)


def system_message(room_id, text):
    """A message without author, posted by the server (operator, manhole): its frame data."""
    return _ORM.system_message_now(room_id, text)


def history(room_id, data):
    """One page of messages by seq (two queries whatever the page size), at most
    ``MAX_ANSWER_BYTES`` of them (at least one): a cut page says ``has_more``."""
    if "before" in data and "after" in data:
        raise invalid("Give 'before' or 'after', not both.")
    limit = data.get("limit", option("PAGE_SIZE"))
    page = Message.objects.filter(room_id=room_id).select_related("author")
    if "after" in data:
        page = page.filter(seq__gt=data["after"]).order_by("seq")
    else:
        if "before" in data:
            page = page.filter(seq__lt=data["before"])
        page = page.order_by("-seq")
    rows = list(page.prefetch_related("reactions")[: limit + 1])
    more = len(rows) > limit
    budget = option("MAX_ANSWER_BYTES")
    kept = []  # in the query's order: the messages nearest the cursor first
    for message in rows[:limit]:
        payload = message_payload(message)
        budget -= encoded_size(payload)
        if budget < 0 and kept:
            more = True
            break
        kept.append((message.seq, payload))
    kept.sort(key=lambda pair: pair[0])
    return {
        "room_id": room_id,
        "messages": [payload for _, payload in kept],
        "has_more": more,
    }


def _editable(message_id):
    message = (
        Message.objects.select_related("author").prefetch_related("reactions").filter(pk=message_id)
    ).first()
    if message is None or message.is_deleted:
        raise not_found("Message")
    return message


def modify_message(user, access, message_id, data):
    """Edit (author only) or delete (author, or delete_any_message) one message."""
    action = data["action"]
    message = _editable(message_id)
    if action == "update":
        if message.author_id != user.pk:
            raise ProtocolError(ERROR_PERMISSION_DENIED, "Only the author edits a message.")
        if permissions.SEND not in access.perms:
            # New content is a new say: not in a locked group or a channel one cannot post to.
            raise ProtocolError(ERROR_PERMISSION_DENIED, "Missing permission send_message.")
        if "content" not in data:
            raise invalid("'content' is required to update a message.")
    else:
        if "content" in data:
            raise invalid("'delete' takes no content.")
        if message.author_id != user.pk and permissions.DELETE_ANY not in access.perms:
            raise ProtocolError(ERROR_PERMISSION_DENIED, "You may delete only your own messages.")
    return apply_modification(message, access.room_id, action, data.get("content"))


def apply_modification(message, room_id, action, content=None):
    """Edit or delete a message as one room event (seq, log); returns the frame data.

    The checks are the caller's: modify_message for clients, services/moderation.py for staff.
    """
    message_id = message.pk
    with transaction.atomic():
        seq = eventlog.next_seq(room_id)
        if action == "update":
            message.content, message.is_edited = content, True
            message.edited_at = timezone.now()
            message.save(update_fields=["content", "is_edited", "edited_at"])
            payload = message_payload(message)
        elif option("MESSAGE_SOFT_DELETE"):
            message.is_deleted = True
            message.save(update_fields=["is_deleted"])
            payload = message_payload(message)
        else:
            message.delete()
            payload = deleted_message_payload(message_id, room_id)
        extra = {"action": action}
        eventlog.record(room_id, eventlog.MESSAGE_MODIFIED, extra, message_id=message_id, seq=seq)
    return eventlog.frame_data(room_id, seq, extra, payload)


def react(user, access, message_id, data):
    """Add or remove a reaction; repeating one changes nothing and takes no seq. A message
    holds at most MAX_REACTIONS_PER_MESSAGE distinct emoji."""
    emoji, adding = data["emoji"], data["action"] == "add"
    event = {"message_id": message_id, "action": data["action"], "emoji": emoji}
    event["user"] = user_payload(user)
    with transaction.atomic():
        # The row lock makes the distinct-emoji check and the insert one step per message.
        rows = Message.objects.filter(pk=message_id, is_deleted=False).only("pk")
        message = (rows.select_for_update() if adding else rows).first()
        if message is None:
            raise not_found("Message")
        if adding:
            _check_reaction_room(message, emoji)
            _, changed = Reaction.objects.get_or_create(message=message, user=user, emoji=emoji)
        else:
            changed = bool(
                Reaction.objects.filter(message=message, user=user, emoji=emoji).delete()[0]
            )
        if not changed:
            return {"room_id": access.room_id, "seq": None, **event, "changed": False}, False
        event["changed"] = True
        seq = eventlog.record(access.room_id, REACTION, event)
    return eventlog.frame_data(access.room_id, seq, event), True


def _check_reaction_room(message, emoji):
    """4005 when ``emoji`` would be one distinct reaction too many on ``message``."""
    limit = option("MAX_REACTIONS_PER_MESSAGE")
    present = set(message.reactions.values_list("emoji", flat=True).distinct()[: limit + 1])
    if emoji not in present and len(present) >= limit:
        raise ProtocolError(ERROR_CONFLICT, f"A message holds at most {limit} different reactions.")


def _advance(user, cursors, field_name):
    """Move a per-member cursor forward (never back, never past last_seq) in bulk.

    Returns ``(current, moved)``: every room's cursor now, and ``{room_id: (old, new)}`` for the
    ones that moved. A room the user is not a member of is 4004 and nothing is written.
    """
    memberships = list(
        Membership.objects.filter(user=user, room_id__in=list(cursors)).select_related("room")
    )
    if len(memberships) != len(cursors):
        raise not_found()
    moved = {}
    for membership in memberships:
        old = getattr(membership, field_name)
        new = min(cursors[membership.room_id], membership.room.last_seq)
        if new > old:
            setattr(membership, field_name, new)
            moved[membership.room_id] = (old, new)
    if moved:
        Membership.objects.bulk_update(
            [m for m in memberships if m.room_id in moved], [field_name], batch_size=100
        )
    current = {m.room_id: getattr(m, field_name) for m in memberships}
    return current, moved


def mark_read(user, cursors):
    """Returns ``(reply_data, {room_id: broadcast_data})`` for the rooms whose cursor moved."""
    current, moved = _advance(user, cursors, "last_read_seq")
    me = user_payload(user)
    reply = {
        "user": me,
        "receipts": [{"room_id": rid, "last_read_seq": seq} for rid, seq in current.items()],
    }
    broadcasts = {
        rid: {"user": me, "receipts": [{"room_id": rid, "last_read_seq": new}]}
        for rid, (_, new) in moved.items()
    }
    return reply, broadcasts


def acknowledge(user, cursors):
    """Record delivery; returns ``{author_id: data}`` for authors of newly delivered messages."""
    _, moved = _advance(user, cursors, "last_delivered_seq")
    me = user_payload(user)
    per_author = {}
    for room_id, (old, new) in moved.items():
        authors = (
            Message.objects.filter(room_id=room_id, seq__gt=old, seq__lte=new)
            .exclude(author=user)
            .exclude(author__isnull=True)
            .values_list("author_id", flat=True)
            .distinct()
        )
        for author_id in authors:
            per_author.setdefault(author_id, []).append(
                {"room_id": room_id, "last_delivered_seq": new}
            )
    return {author: {"user": me, "receipts": receipts} for author, receipts in per_author.items()}
