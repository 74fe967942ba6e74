"""The call queue (a Batcher): calls made while a batch is in flight share the next one, in
submission order."""

import asyncio

import pytest

from chatserver.chat.storage.call_queue import Batcher


class Recorder:
    """A run_batch that records each call and waits for the test to release it."""

    def __init__(self):
        self.calls = []
        self.release = asyncio.Event()

    async def __call__(self, items):
        self.calls.append(list(items))
        await self.release.wait()
        return [f"stored {item}" for item in items]


async def test_the_first_item_starts_a_call_and_later_ones_share_the_next():
    run = Recorder()
    batcher = Batcher(run)
    first = batcher.submit("a")
    await asyncio.sleep(0)  # the worker starts at once: no waiting for company
    assert run.calls == [["a"]]
    rest = [batcher.submit(x) for x in "bcd"]
    await asyncio.sleep(0)
    assert run.calls == [["a"]]  # b, c, d wait for the call in flight
    run.release.set()
    assert await first == "stored a"
    assert await asyncio.gather(*rest) == ["stored b", "stored c", "stored d"]
    assert run.calls == [["a"], ["b", "c", "d"]]


async def test_the_limit_splits_a_long_queue():
    run = Recorder()
    run.release.set()
    batcher = Batcher(run, limit=2)
    futures = [batcher.submit(i) for i in range(5)]
    assert await asyncio.gather(*futures) == [f"stored {i}" for i in range(5)]
    assert run.calls == [[0, 1], [2, 3], [4]]


async def test_an_exception_outcome_reaches_its_waiter_alone():
    async def run(items):
        return [ValueError(item) if item == "bad" else item for item in items]

    batcher = Batcher(run)
    good, bad, other = (batcher.submit(x) for x in ("ok", "bad", "fine"))
    assert await good == "ok"
    with pytest.raises(ValueError, match="bad"):
        await bad
    assert await other == "fine"


async def test_a_failing_call_fails_its_batch_and_the_next_batch_still_runs():
    calls = []

    async def run(items):
        calls.append(items)
        await asyncio.sleep(0)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return items

    batcher = Batcher(run)
    first = batcher.submit(1)
    await asyncio.sleep(0)
    second = batcher.submit(2)
    with pytest.raises(RuntimeError):
        await first
    assert await second == 2


async def test_cancelling_the_worker_cancels_every_waiter():
    run = Recorder()  # never released
    batcher = Batcher(run)
    in_flight = batcher.submit("a")
    await asyncio.sleep(0)
    queued = batcher.submit("b")
    (queue,) = batcher._loops.values()
    queue.worker.cancel()
    for future in (in_flight, queued):
        with pytest.raises(asyncio.CancelledError):
            await future
    assert queue.worker is None and not queue.items
    run.release.set()
    assert await batcher.submit("c") == "stored c"  # a new worker starts


async def test_a_cancelled_waiter_does_not_disturb_the_batch():
    run = Recorder()
    batcher = Batcher(run)
    first, second = batcher.submit("a"), batcher.submit("b")
    first.cancel()
    run.release.set()
    assert await second == "stored b"
    assert run.calls == [["a", "b"]]
