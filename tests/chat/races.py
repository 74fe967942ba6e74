"""Helpers for races the database and the batchers must settle."""

import asyncio
import contextlib
import inspect
import threading

from django.db import connection, transaction

from chatserver.chat.models import Message, Room
from chatserver.chat.services import eventlog


async def wait_for(predicate, timeout=5):
    """Poll ``predicate()`` (a bool or an awaitable of one) until it is true; TimeoutError
    after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while True:
            done = predicate()
            if inspect.isawaitable(done):
                done = await done
            if done:
                return
            await asyncio.sleep(0.01)


def store_a_resend_and_hold(room_id, author, holding, release, winner, hold=10.0):
    """Store ``(author, "race")`` as another daemon's send would, in a transaction left open
    until ``release`` is set (or ``hold`` seconds pass): a batch storing the same client_msg_id
    meanwhile waits on its locks. Sets ``holding`` once the rows are written, and
    ``winner["id"]``. Runs in a thread of its own."""
    try:
        with transaction.atomic():
            seq = eventlog.next_seq(room_id)
            message = Message.objects.create(
                room_id=room_id, seq=seq, author=author, content="w", client_msg_id="race"
            )
            eventlog.record(room_id, eventlog.MESSAGE_CREATED, message_id=message.pk, seq=seq)
            winner["id"] = message.pk
            holding.set()
            release.wait(hold)
    finally:
        connection.close()


class HeldBatches:
    """Holds a Batcher's first batch until ``gate`` is set; ``sizes`` records every batch.

    The real batch function still runs for every item: this only decides when it starts.
    """

    def __init__(self, monkeypatch, batcher):
        self.batcher = batcher
        self.gate = asyncio.Event()
        self.sizes = []
        real = batcher.run_batch

        async def held(items):
            self.sizes.append(len(items))
            await self.gate.wait()
            return await real(items)

        monkeypatch.setattr(batcher, "run_batch", held)

    def waiting(self):
        """Items submitted on this loop and not yet taken into a batch."""
        queue = self.batcher._loops.get(asyncio.get_running_loop())
        return 0 if queue is None else len(queue.items)

    async def until(self, predicate, what):
        try:
            await wait_for(predicate, timeout=2)
        except TimeoutError:
            raise AssertionError(
                f"{what}: batches {self.sizes}, {self.waiting()} waiting"
            ) from None


@contextlib.asynccontextmanager
async def room_row_held(room_id):
    """Another connection holds the room's row lock (SELECT ... FOR UPDATE) for the block:
    a batch storing into that room waits on it meanwhile."""
    holding, release = threading.Event(), threading.Event()

    def hold_the_room():
        try:
            with transaction.atomic():
                Room.objects.select_for_update().get(pk=room_id)
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_room)
    holder.start()
    try:
        assert await asyncio.to_thread(holding.wait, 10)
        yield
    finally:
        release.set()
        await asyncio.to_thread(holder.join, 10)
