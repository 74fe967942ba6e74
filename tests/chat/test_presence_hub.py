"""The presence hub on its own: away follows the hub's clock, and sockets that do not subscribe
cost a counter per user, not a task or a record per socket."""

import asyncio

import pytest
from channels.layers import get_channel_layer

from chatserver.chat.delivery import presence
from chatserver.chat.delivery.localgroups import local_groups
from chatserver.chat.delivery.presence import PresenceHub, presence_group

pytestmark = pytest.mark.django_db(transaction=True)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Recorder:
    """A member of presence groups, as another process's hub would be."""

    def __init__(self):
        self.heard = []

    async def presence_changed(self, message):
        self.heard.append((message["user_id"], message["status"]))


async def heard(recorder, count):
    for _ in range(200):
        if len(recorder.heard) >= count:
            return recorder.heard
        await asyncio.sleep(0.01)
    raise AssertionError(f"heard only {recorder.heard}")


async def test_away_follows_the_hubs_clock():
    layer = get_channel_layer()
    clock = Clock()
    hub = PresenceHub(layer, away_after=300, flush_interval=3600, clock=clock)
    recorder = Recorder()
    await local_groups(layer).add(presence_group(7), recorder)
    try:
        hub.opened(7)
        assert await heard(recorder, 1) == [(7, "online")]
        clock.now += 299
        hub.mark_away()
        hub.opened(7)  # a second socket is no news
        clock.now += 299
        hub.mark_away()  # the second socket's connect counted as activity
        await asyncio.sleep(0.05)
        assert recorder.heard == [(7, "online")]
        clock.now += 1
        hub.mark_away()
        assert await heard(recorder, 2) == [(7, "online"), (7, "away")]
        hub.mark_away()  # once
        hub.touch(7)
        assert await heard(recorder, 3) == [(7, "online"), (7, "away"), (7, "online")]
    finally:
        hub._ticker.cancel()
        await local_groups(layer).discard(presence_group(7), recorder)


async def test_idle_sockets_cost_a_counter_per_user_and_no_task(connect, users):
    layer = get_channel_layer()
    sockets = [await connect(user) for user in (users.alice, users.bob, users.carol)]
    sockets.append(await connect(users.alice))
    hub = presence.hub(layer)
    assert {uid: u.sockets for uid, u in hub.local.items()} == {
        users.alice.pk: 2,
        users.bob.pk: 1,
        users.carol.pk: 1,
    }
    assert hub.subscriptions == {} and hub.watched == {} and hub.pending == {}
    tasks = [
        task
        for task in asyncio.all_tasks()
        if "PresenceHub" in getattr(task.get_coro(), "__qualname__", "")
    ]
    assert [task.get_coro().__qualname__ for task in tasks] == ["PresenceHub._tick_loop"]
