"""Messages: send, history, edit/delete, reactions, read receipts and delivery acks.

Every write that is a room event takes the room's next seq in the same transaction; receipts and
acks are idempotent cursors (``max(old, new)``), not events.
"""

from django.db import IntegrityError, transaction
from django.utils import timezone

from ..conf import option
from ..models import Membership, Message, Reaction, Room, RoomEvent
from ..protocol import (
    ERROR_CONFLICT,
    ERROR_PERMISSION_DENIED,
    REACTION,
    ProtocolError,
    encoded_size,
    invalid,
)
from ..serializers import deleted_message_payload, message_payload, user_payload
from . import eventlog, one_statement, permissions
from .rooms import not_found


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
    """Store a batch of ``(user, room_id, data)`` sends in one transaction, seqs in list order.

    Returns one outcome per request: ``(frame_data, duplicate)``, or the ProtocolError that
    refused it (the others are stored all the same). A resend of a known ``client_msg_id``
    returns the original with ``duplicate`` set. The queries are a constant number per batch
    plus one seq UPDATE per room (and one lookup per reply or forward), so a busy process
    pays BEGIN/COMMIT and the round trips once for many messages.
    """
    try:
        return _send_batch(requests)
    except IntegrityError:
        # A client_msg_id raced in from another connection between the lookup and the INSERT.
        if len(requests) > 1:
            return [send_messages([request])[0] for request in requests]
        user, room_id, data = requests[0]
        original = _originals(requests).get((user.pk, data.get("client_msg_id")))
        if original is None:
            raise
        return [_outcome(original, room_id)]


def _send_batch(requests):
    batch = SendBatch(requests)
    batch.sort()
    if not batch.per_room:
        stored = {}
    elif one_statement.usable(len(batch.per_room)):
        ((room_id, messages),) = batch.per_room.items()
        stored = one_statement.store(room_id, messages)
    else:
        stored = _store_with_orm(batch.per_room, batch.outcomes)
    passed_over = batch.record(stored)
    if passed_over:
        batch.look_up(passed_over)
    return batch.finish()


class SendBatch:
    """One batch of sends, step by step, so that the event loop can store one (chat/loopstore.py)
    with the same rules: sort(), the store, record(), look_up() when record() names any, finish().

    Only the store, look_up() and sort() touch the database; with ``look_up_late`` (PostgreSQL,
    one room or ``statement_per_room``, no replies or forwards) sort() does not: the
    one-statement store passes over stored client_msg_ids by itself and the look-up runs
    afterwards for those alone. Replies and forwards are validated with queries, so such
    batches look up first.
    """

    def __init__(self, requests, statement_per_room=False):
        self.requests = requests
        self.outcomes = [None] * len(requests)
        self.keys = [(user.pk, data.get("client_msg_id")) for user, _, data in requests]
        # The event loop stores each room's messages with its own statement; the thread's one
        # statement covers every room of the batch, so one_statement.usable wants a single room.
        per_statement = 1 if statement_per_room else len({room_id for _, room_id, _ in requests})
        self.look_up_late = one_statement.usable(per_statement) and not any(
            _references(data) for _, _, data in requests
        )
        self.originals = {}
        self.first_of = {}  # (author, client_msg_id) -> index of the request that stores it
        self.per_room = {}  # room id -> {index: unsaved Message}, in request order
        self.stored = {}  # index -> Message, from record()

    def sort(self):
        """Answer resends of stored messages, refuse invalid sends, queue the rest to store."""
        if not self.look_up_late:
            self.originals = _originals(self.requests)
        for i, (user, room_id, data) in enumerate(self.requests):
            key = self.keys[i]
            if key in self.originals:
                self.outcomes[i] = _outcome(self.originals[key], room_id)
            elif key[1] is not None and key in self.first_of:
                continue  # a resend inside this batch: answered from the first copy in finish()
            else:
                try:
                    content, parent_id, source_id = _content(user, room_id, data)
                except ProtocolError as error:
                    self.outcomes[i] = error
                    continue
                if key[1] is not None:
                    self.first_of[key] = i
                self.per_room.setdefault(room_id, {})[i] = Message(
                    room_id=room_id,
                    author=user,
                    content=content,
                    client_msg_id=key[1],
                    parent_id=parent_id,
                    forwarded_from_id=source_id,
                )

    def record(self, stored):
        """Answer the stored messages (``{index: Message}``); returns the indexes the store
        passed over: a resend of a stored client_msg_id, or a message whose room is gone."""
        self.stored = stored
        for i, message in stored.items():
            self.outcomes[i] = _outcome(message, message.room_id, duplicate=False, reactions=())
        return [
            i for messages in self.per_room.values() for i in messages if self.outcomes[i] is None
        ]

    def look_up(self, passed_over):
        """Answer the passed-over sends with the stored originals, or 4004 (a query)."""
        self.originals.update(_originals([self.requests[i] for i in passed_over]))
        for i in passed_over:
            original = self.originals.get(self.keys[i])
            room_id = self.requests[i][1]
            self.outcomes[i] = not_found() if original is None else _outcome(original, room_id)

    def finish(self):
        """The outcomes, resends inside the batch answered like their first copy."""
        for i, (_, room_id, _) in enumerate(self.requests):
            if self.outcomes[i] is None:
                first = self.first_of[self.keys[i]]
                if first in self.stored:
                    self.outcomes[i] = _outcome(self.stored[first], room_id, reactions=())
                elif self.keys[i] in self.originals:
                    self.outcomes[i] = _outcome(self.originals[self.keys[i]], room_id)
                else:
                    self.outcomes[i] = self.outcomes[first]
        return self.outcomes


def _references(data):
    return data.get("parent_message_id") is not None or data.get("forwarded_from_id") is not None


def _store_with_orm(per_room, outcomes):
    stored = {}
    with transaction.atomic():
        # Rooms in id order: concurrent batches lock room rows in the same order, no deadlock.
        for room_id in sorted(per_room):
            messages = per_room[room_id]
            try:
                last = eventlog.next_seq(room_id, len(messages))
            except Room.DoesNotExist:
                _refuse(messages, outcomes)
                continue
            for seq, message in enumerate(messages.values(), start=last - len(messages) + 1):
                message.seq = seq
            stored.update(messages)
        if stored:
            Message.objects.bulk_create(stored.values())
            RoomEvent.objects.bulk_create(
                RoomEvent(
                    room_id=m.room_id,
                    seq=m.seq,
                    event_type=eventlog.MESSAGE_CREATED,
                    message_id=m.pk,
                )
                for m in stored.values()
            )
    return stored


def _refuse(messages, outcomes):
    """The room was deleted since the senders' access was checked: 4004 for its messages."""
    for i in messages:
        outcomes[i] = not_found()


def _originals(requests):
    """Stored messages by ``(author id, client_msg_id)`` for the requests carrying an id, in one
    query (none when no request carries one)."""
    wanted = {(user.pk, data.get("client_msg_id")) for user, _, data in requests}
    wanted = {key for key in wanted if key[1] is not None}
    if not wanted:
        return {}
    rows = (
        Message.objects.filter(
            author_id__in={a for a, _ in wanted}, client_msg_id__in={c for _, c in wanted}
        )
        .select_related("author")
        .prefetch_related("reactions")
    )
    return {
        (m.author_id, m.client_msg_id): m for m in rows if (m.author_id, m.client_msg_id) in wanted
    }


def _outcome(message, room_id, duplicate=True, reactions=None):
    """``(frame_data, duplicate)`` for a stored message; a resend naming another room is 4005.

    ``reactions=()`` for a message stored by this batch: it has none to read yet.
    """
    if message.room_id != room_id:
        return ProtocolError(ERROR_CONFLICT, "client_msg_id was already used in another room.")
    payload = message_payload(message, reactions=reactions)
    return eventlog.frame_data(room_id, message.seq, {}, payload), duplicate


def _content(user, room_id, data):
    """Validate reply/forward references; a forward copies the source message's content."""
    parent_id, source_id = data.get("parent_message_id"), data.get("forwarded_from_id")
    if parent_id is not None and source_id is not None:
        raise invalid("A message is either a reply or a forward, not both.")
    if parent_id is not None and not Message.objects.filter(pk=parent_id, room_id=room_id).exists():
        # Replies stay inside the room: a message elsewhere is not visible from here.
        raise not_found("Parent message")
    if source_id is None:
        if "content" not in data:
            raise invalid("'content' is required.")
        return data["content"], parent_id, None
    if "content" in data:
        raise invalid("A forward carries the source message's content; drop 'content'.")
    source = (
        Message.objects.filter(
            pk=source_id, is_deleted=False, room__memberships__user=user, kind=Message.TEXT
        )
        .only("content")
        .first()
    )
    if source is None:
        # Only from rooms the sender can read: anything else looks like it does not exist.
        raise not_found("Forwarded message")
    return source.content, None, source_id


def system_message(room_id, text):
    """A message without author, posted by the server (operator, manhole)."""
    with transaction.atomic():
        if not Room.objects.filter(pk=room_id).exists():
            raise not_found()
        seq = eventlog.next_seq(room_id)
        message = Message.objects.create(
            room_id=room_id, seq=seq, author=None, kind=Message.SYSTEM, content=text
        )
        eventlog.record(room_id, eventlog.MESSAGE_CREATED, message_id=message.pk, seq=seq)
    return eventlog.frame_data(room_id, seq, {}, message_payload(message, reactions=()))


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
