"""The portable storage: Django's ORM in the database thread, on any database.

The embedded default (SQLite), the tests, and the chat application under plain ``daphne`` or
``uvicorn`` store this way, and so does anything else a daemon's event loop does not run
itself. A batch of sends is one trip to the database thread: the steps of
``MessageStore.store_sends`` run there, synchronously (``run_now``), with a constant number of
queries per batch plus one seq UPDATE per room.
"""

from channels.db import database_sync_to_async
from django.db import transaction
from django.utils import timezone

from ..models import Message, Room, RoomEvent, Session
from ..reconnect import refused_while_lost
from ..services import eventlog
from ..services import rooms as room_service
from ..services.rooms import not_found
from .interface import Connected, ConnectState, MessageStore


class OrmMessageStore(MessageStore):
    async def store_sends(self, requests):
        return await _in_thread(self.store_sends_now, requests)

    def store_sends_now(self, requests):
        """``store_sends`` in this thread (the database thread, a test, a set-up script)."""
        return run_now(MessageStore.store_sends(self, requests))

    async def system_message(self, room_id, text):
        return await _in_thread(self.system_message_now, room_id, text)

    def system_message_now(self, room_id, text):
        """``system_message`` in this thread."""
        return run_now(MessageStore.system_message(self, room_id, text))

    async def run_orm(self, function, *args):
        return function(*args)  # the steps run in the database thread already (run_now)

    async def store_rooms(self, per_room, outcomes):
        stored = {}
        with transaction.atomic():
            # Rooms in id order: concurrent batches lock room rows in the same order.
            for room_id in sorted(per_room):
                messages = per_room[room_id]
                try:
                    last = eventlog.next_seq(room_id, len(messages))
                except Room.DoesNotExist:  # deleted since the senders' access was checked
                    for i in messages:
                        outcomes[i] = not_found()
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


class OrmConnectState(ConnectState):
    async def opened(self, user, channel_name, with_notifications):
        return await database_sync_to_async(opened_now)(user, channel_name, with_notifications)


def opened_now(user, channel_name, with_notifications):
    """``ConnectState.opened`` in this thread: the session INSERT, the open-socket count, the
    rooms with their unread flag, and the summary only when something is unread."""
    # One INSERT (channel names are never reused), then the user's open sockets on every
    # daemon (rows of a crashed daemon count until the sweeper closes them).
    Session.objects.create(user=user, channel_name=channel_name, last_heartbeat=timezone.now())
    open_sockets = Session.objects.filter(user_id=user.pk, closed_at__isnull=True).count()
    rooms = room_service.rooms_with_unread_flag(user)
    room_ids = [room_id for room_id, _ in rooms]
    if not with_notifications:
        return Connected(room_ids, None, open_sockets)
    if not any(unread for _, unread in rooms):  # spare the summary's heavier queries
        return Connected(room_ids, {"rooms": [], "has_more": False}, open_sockets)
    return Connected(room_ids, room_service.notifications(user), open_sockets)


async def _in_thread(function, *args):
    """Run ``function`` in the database thread; a lost connection there is 4503."""
    return await refused_while_lost(database_sync_to_async(function))(*args)


def run_now(coroutine):
    """The result of a coroutine that never waits on anything: the ORM store's steps, which
    run synchronously in the thread that calls this."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("a synchronous storage step waited on the event loop")
