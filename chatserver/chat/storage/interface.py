"""The storage interface: ``MessageStore`` (sends, system messages) and ``ConnectState`` (what
a connect writes and reads). storage/orm.py and storage/event_loop.py implement them.

Every method is a coroutine called on the event loop. The steps of a batch of sends and the
one retry are written here, once; an implementation supplies how a batch's rooms are stored
(``store_rooms``) and where ORM work runs (``run_orm``).
"""

import abc
from typing import NamedTuple

from django.db import IntegrityError

from ..services.rooms import not_found
from .send_batch import SendBatch, system_message, system_message_data


class Connected(NamedTuple):
    """What a connect learns: the user's rooms, the unread summary (None when not asked for)
    and how many sockets the user has open now, this one included (on every daemon: the
    session rows say)."""

    room_ids: list
    summary: dict | None
    open_sockets: int


class MessageStore(abc.ABC):
    """Stores batches of sends and system messages, each as room events (seq, log row).

    ``store_sends`` runs a batch's steps in this order (send_batch.SendBatch):

    1. ``SendBatch.sort()``: resends answered, invalid sends refused, the rest grouped per room;
       through ``run_orm`` when it reads the database (``sort_needs_queries``), else at once.
    2. ``store_rooms(batch.per_room, batch.outcomes)``: the one write, one transaction for the
       whole batch, rooms in id order (concurrent batches lock room rows in the same order).
    3. ``SendBatch.record(stored)``: answers for what was stored; names what was passed over.
    4. ``SendBatch.look_up(passed_over)`` through ``run_orm``, only when step 3 named any.
    5. ``SendBatch.finish()``: resends inside the batch answered like their first copy.

    The one retry: when step 2 fails with IntegrityError (a resend of the same client_msg_id
    committed by another connection meanwhile; nothing of the batch was stored), the batch is
    run again from step 1, once, on the same store: the winner is a stored original by then.
    A lost database connection is not retried (the batch may have been stored): its senders
    get 4503 and resend with the same client_msg_id.
    """

    #: Whether ``store_rooms`` passes over stored client_msg_ids by itself (sort() then reads
    #: nothing for a batch without replies or forwards).
    finds_resends = False

    async def store_sends(self, requests):
        """Store ``[(user, room_id, data), ...]``; one outcome per request, in order:
        ``(frame_data, duplicate)`` or the ProtocolError that refused it. Raises the 4503
        ProtocolError for the whole batch when the database cannot be reached."""
        try:
            return await self._run_batch(requests)
        except IntegrityError:
            return await self._run_batch(requests)

    async def _run_batch(self, requests):
        batch = SendBatch(requests, self.finds_resends)
        if batch.sort_needs_queries:
            await self.run_orm(batch.sort)
        else:
            batch.sort()
        stored = {}
        if batch.per_room:
            stored = await self.store_rooms(batch.per_room, batch.outcomes)
        passed_over = batch.record(stored)
        if passed_over:
            await self.run_orm(batch.look_up, passed_over)
        return batch.finish()

    async def system_message(self, room_id, text):
        """Post ``text`` into a room as a message without author; returns its frame data.
        Raises ProtocolError(4004) when the room does not exist."""
        message = system_message(room_id, text)
        stored = await self.store_rooms({room_id: {0: message}}, [None])
        if not stored:
            raise not_found()
        return system_message_data(stored[0])

    @abc.abstractmethod
    async def store_rooms(self, per_room, outcomes):
        """Store ``{room_id: {index: unsaved Message}}`` in one transaction, each room's
        messages taking its next seqs in order, each with its ``message.dispatch`` log row;
        returns the stored ones ``{index: Message}`` with pk, seq and created_at set.

        A room that no longer exists stores nothing (its indexes are left out, or answered
        4004 in ``outcomes``). Raises django's IntegrityError, storing nothing, when a
        client_msg_id raced in from another connection."""

    @abc.abstractmethod
    async def run_orm(self, function, *args):
        """Run ``function(*args)``, which uses the ORM, where the ORM may run; its result."""


class ConnectState(abc.ABC):
    """What a new connection writes and reads, in one database call."""

    @abc.abstractmethod
    async def opened(self, user, channel_name, with_notifications):
        """Record the connection's session row and read the user's rooms, the open-socket
        count and (when asked) the unread summary: a ``Connected``. Raises when the database
        cannot be reached (the socket is closed then: the client reconnects)."""
