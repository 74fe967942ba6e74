"""Coalesce concurrent calls into one database call.

Storing a message costs a thread hop, BEGIN/COMMIT and a round trip per statement; under load
that fixed part is most of it. A Batcher passes every item submitted while a call is in flight
to the next call, so a busy process stores many messages per transaction, and a quiet one adds
no delay: the first item starts a call at once.
"""

import asyncio
import weakref

# A path every message takes. Past what the daemon's core can do (2,500 sends a second in the
# small-rooms bench) a batch of sends came back every 130 ms carrying 288: a cap of 100 would
# split such a backlog into three calls, each paying its round trip and its wait for a pass of
# the loop, where one call can take it all.
HOT_PATH_LIMIT = 1000


class Batcher:
    """Hands queued items to ``run_batch(items) -> outcomes`` (an async callable), in order.

    An outcome that is an exception is raised to that item's waiter alone; an exception from
    ``run_batch`` itself goes to every waiter of the batch. State is per event loop, so one
    module-level Batcher serves the daemon and tests that run their own loops.
    """

    def __init__(self, run_batch, limit=100):
        """``limit``: the most items one call takes. Under load a call's result waits for the
        event loop's next pass, which is long then, so the limit is about the most items a pass
        can get through: on a path every message takes, keep it well above the rate times the
        length of a busy pass (HOT_PATH_LIMIT)."""
        self.run_batch = run_batch
        self.limit = limit
        self._loops = weakref.WeakKeyDictionary()  # loop -> _LoopQueue

    def submit(self, item):
        """Queue ``item`` now (calls store items in submission order); returns its future."""
        loop = asyncio.get_running_loop()
        queue = self._loops.get(loop)
        if queue is None:
            queue = self._loops[loop] = _LoopQueue()
        future = loop.create_future()
        queue.items.append((item, future))
        if queue.worker is None:
            queue.worker = loop.create_task(self._work(queue))
        return future

    async def _work(self, queue):
        batch = []
        try:
            while queue.items:
                batch = queue.items[: self.limit]
                del queue.items[: self.limit]
                try:
                    outcomes = await self.run_batch([item for item, _ in batch])
                except Exception as error:  # noqa: BLE001 - every waiter gets the failure
                    outcomes = [error] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():  # its waiter was cancelled
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            queue.worker = None
            # Cancelled (the loop is shutting down): no waiter may hang on a batch that stopped.
            for _, future in batch + queue.items:
                future.cancel()
            queue.items.clear()


class _LoopQueue:
    __slots__ = ("items", "worker")

    def __init__(self):
        self.items = []
        self.worker = None
