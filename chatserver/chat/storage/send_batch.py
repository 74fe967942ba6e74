"""The rules of a batch of sends, whatever stores it: resends, refusals, answers.

A batch is a list of ``(user, room_id, data)`` sends stored together (the message call queue
gathers the sends that arrive while the previous batch is stored). Each send is answered as if
sent alone: ``(frame_data, duplicate)`` or the ProtocolError that refused it. A resend of a
stored ``client_msg_id`` (in this batch or before) answers with the original and stores
nothing; a send into a room deleted since its access was checked is 4004; the others are
stored with the room's next seqs, in batch order. ``MessageStore.store_sends``
(storage/interface.py) runs the steps below in their one order.
"""

from ..models import Message
from ..protocol import ERROR_CONFLICT, ProtocolError, invalid
from ..serializers import message_payload
from ..services import eventlog
from ..services.rooms import not_found


class SendBatch:
    """One batch of sends, step by step: sort(), the store, record(), look_up() when record()
    names any, finish().

    sort() and look_up() read the database (ORM); record() and finish() do not. With
    ``store_finds_resends`` (the event loop's statement passes over stored client_msg_ids by
    itself) and no replies or forwards in the batch, sort() reads nothing either
    (``sort_needs_queries`` is False): the look-up runs afterwards, for the passed-over sends
    alone. Replies and forwards are validated with queries, so such batches look up first.
    """

    def __init__(self, requests, store_finds_resends=False):
        self.requests = requests
        self.outcomes = [None] * len(requests)
        self.keys = [(user.pk, data.get("client_msg_id")) for user, _, data in requests]
        self.sort_needs_queries = not store_finds_resends or any(
            _references(data) for _, _, data in requests
        )
        self.originals = {}
        self.first_of = {}  # (author, client_msg_id) -> index of the request that stores it
        self.per_room = {}  # room id -> {index: unsaved Message}, in request order
        self.stored = {}  # index -> Message, from record()

    def sort(self):
        """Answer resends of stored messages, refuse invalid sends, queue the rest to store
        (in ``per_room``)."""
        if self.sort_needs_queries:
            self.originals = originals(self.requests)
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
        passed over: a resend of a stored client_msg_id, or a message whose room is gone (the
        ORM's store has answered those 4004 already)."""
        self.stored = stored
        for i, message in stored.items():
            self.outcomes[i] = _outcome(message, message.room_id, duplicate=False, reactions=())
        return [
            i for messages in self.per_room.values() for i in messages if self.outcomes[i] is None
        ]

    def look_up(self, passed_over):
        """Answer the passed-over sends with the stored originals, or 4004 (a query)."""
        self.originals.update(originals([self.requests[i] for i in passed_over]))
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


def system_message(room_id, text):
    """An unsaved message without author, posted by the server (operator, manhole)."""
    return Message(room_id=room_id, author=None, kind=Message.SYSTEM, content=text)


def system_message_data(message):
    """The frame data of a stored system message."""
    payload = message_payload(message, reactions=())
    return eventlog.frame_data(message.room_id, message.seq, {}, payload)


def _references(data):
    return data.get("parent_message_id") is not None or data.get("forwarded_from_id") is not None


def originals(requests):
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
