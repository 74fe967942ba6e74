"""Rate-limit buckets belong to the user, outlive sockets, expire when idle and survive Redis
failures (two daemons sharing one budget: tests/daemon/test_cluster.py)."""

import asyncio
import logging

import pytest
import redis

from chatserver.chat.limits.ratelimit import KEY_PREFIX, LocalBuckets, RateLimiter, limiter
from tests.support.processes import free_port
from tests.support.redis import RedisServer

SLOW = {"rate": 0.001, "burst": 2}  # two sends, then nothing for the rest of the test
LIMITS = {"send": SLOW, "typing": SLOW, "read": {"rate": 0.001, "burst": 50}, "manage": SLOW}


@pytest.fixture(params=["process", "redis"])
def buckets_in(request, settings):
    """The shared limiter with its buckets in this process, or in a real Redis."""
    settings.REDIS_URL = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    limiter.reset()
    yield request.param
    limiter.reset()


@pytest.mark.django_db(transaction=True)
async def test_reconnecting_does_not_refill_the_bucket(connect, users, chat_options, buckets_in):
    chat_options(RATE_LIMITS=LIMITS)
    alice = await connect(users.alice)
    room_id = (await alice.ok("room.create", {"type": "group", "name": "r"}))["room"]["id"]
    await alice.ok("message.send", {"room_id": room_id, "content": "1"})
    await alice.ok("message.send", {"room_id": room_id, "content": "2"})
    for _ in range(3):  # a fresh socket every time, as a client dodging the limit would
        assert await alice.error("message.send", {"room_id": room_id, "content": "x"}) == 4029
        await alice.close()
        alice = await connect(users.alice)
    assert await alice.error("message.send", {"room_id": room_id, "content": "x"}) == 4029
    # Another user's budget is untouched.
    bob = await connect(users.bob)
    bobs_room = (await bob.ok("room.create", {"type": "group", "name": "b"}))["room"]["id"]
    await bob.ok("message.send", {"room_id": bobs_room, "content": "b"})


def test_idle_buckets_in_the_process_expire_once_full_again():
    now = [0.0]
    buckets = LocalBuckets(clock=lambda: now[0], sweep_every=10)
    assert buckets.take("alice", "send", 1.0, 2)
    assert buckets.take("alice", "send", 1.0, 2)
    assert not buckets.take("alice", "send", 1.0, 2)
    assert buckets.take("bob", "send", 1.0, 2)
    now[0] = 1.5  # alice has 1.5 tokens again: the bucket is kept, its state still counts
    assert buckets.take("alice", "send", 1.0, 2)
    assert not buckets.take("alice", "send", 1.0, 2)
    now[0] = 10.0  # both full again: the sweep drops them, and only them
    assert buckets.take("carol", "send", 1.0, 2)
    assert set(buckets.buckets) == {("carol", "send")}
    now[0] = 25.0
    buckets.take("carol", "typing", 1.0, 2)
    assert set(buckets.buckets) == {("carol", "typing")}


async def test_redis_buckets_expire_once_full_again(redis_url):
    rlimiter = RateLimiter(limits=lambda: {"send": {"rate": 20, "burst": 2}}, redis_url=redis_url)
    client = redis.Redis.from_url(redis_url)
    key = f"{KEY_PREFIX}7:send"
    try:
        assert await rlimiter.allow(7, "send")
        assert await rlimiter.allow(7, "send")
        assert not await rlimiter.allow(7, "send")
        assert 0 < client.pttl(key) <= 101  # at most 2 tokens at 20/s: 100 ms to full
        for _ in range(200):  # polled: Redis expires the key on its own
            if not client.exists(key):
                break
            await asyncio.sleep(0.02)
        assert not client.exists(key)
        assert client.keys(f"{KEY_PREFIX}*") == []
    finally:
        await rlimiter.redis_buckets().close()
        client.close()


async def test_a_class_set_to_none_is_not_limited_and_costs_no_redis_call(redis_url):
    limits = {"send": None, "typing": {"rate": 0.001, "burst": 1}}
    rlimiter = RateLimiter(limits=lambda: limits, redis_url=redis_url)
    client = redis.Redis.from_url(redis_url)
    try:
        assert all([await rlimiter.allow(7, "send") for _ in range(100)])
        assert client.keys(f"{KEY_PREFIX}*") == []  # no bucket was made for it
        assert await rlimiter.allow(7, "typing")  # the other classes still hold
        assert not await rlimiter.allow(7, "typing")
        assert await rlimiter.allow(7, "manage")  # a class left out keeps its default
        assert client.keys(f"{KEY_PREFIX}*") != []
    finally:
        await rlimiter.redis_buckets().close()
        client.close()


async def test_redis_down_answers_from_the_process_and_logs_once(caplog):
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    rlimiter = RateLimiter(limits=lambda: {"send": {"rate": 0.001, "burst": 2}}, redis_url=dead)
    with caplog.at_level(logging.WARNING, logger="chatserver.chat.limits.ratelimit"):
        answers = [await asyncio.wait_for(rlimiter.allow(1, "send"), 10) for _ in range(3)]
    assert answers == [True, True, False]  # the limit still holds, in this process
    warnings = [r for r in caplog.records if "Redis failed" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    await rlimiter.redis_buckets().close()


async def test_redis_back_again_takes_over(tmp_path, caplog):
    now = [0.0]
    server = RedisServer(tmp_path)  # its port is chosen, nothing listens there yet
    rlimiter = RateLimiter(
        limits=lambda: {"send": {"rate": 0.001, "burst": 1}}, redis_url=server.url,
        clock=lambda: now[0],
    )  # fmt: skip
    try:
        assert await rlimiter.allow(1, "send")  # Redis down: the process's bucket
        server.start()
        assert not await rlimiter.allow(1, "send")  # Redis not retried yet: still the process's
        now[0] = 60.0
        with caplog.at_level(logging.WARNING, logger="chatserver.chat.limits.ratelimit"):
            assert await rlimiter.allow(1, "send")  # Redis' bucket, full
            assert not await rlimiter.allow(1, "send")
        assert "through Redis again" in caplog.text
        assert redis.Redis.from_url(server.url).exists(f"{KEY_PREFIX}1:send")
    finally:
        await rlimiter.redis_buckets().close()
        server.stop()


async def test_a_fast_sender_takes_leases_and_two_daemons_never_exceed_the_bucket(redis_url):
    """A user sending as fast as they can costs a few script calls, not one per frame, and two
    processes sharing the bucket still allow no more than it holds."""
    limits = {"send": {"rate": 0.001, "burst": 40}}  # no refill to speak of during the test
    daemon_1 = RateLimiter(limits=lambda: limits, redis_url=redis_url)
    daemon_2 = RateLimiter(limits=lambda: limits, redis_url=redis_url)
    client = redis.Redis.from_url(redis_url)

    def script_calls():
        stats = client.info("commandstats")
        return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))

    try:
        before = script_calls()
        alone = [await daemon_1.allow(5, "send") for _ in range(20)]
        assert alone == [True] * 20
        assert script_calls() - before < 10  # leases of 1, 2, 4, 8, 10 tokens

        both = []
        for _ in range(40):  # both processes, turn about, until the bucket is empty
            both += [await daemon_1.allow(5, "send"), await daemon_2.allow(5, "send")]
        assert sum(both) <= 20  # what was left; tokens leased and unspent are never given twice
        assert not await daemon_2.allow(5, "send")
    finally:
        await daemon_1.redis_buckets().close()
        await daemon_2.redis_buckets().close()
        client.close()
