"""The presence hub on its own: away follows the hub's clock, and sockets that do not subscribe
cost a counter per user, not a task or a record per socket."""

import asyncio

import pytest
from channels.layers import get_channel_layer

from chatserver.chat.delivery import presence
from chatserver.chat.delivery.localgroups import local_groups
from chatserver.chat.delivery.presence import PresenceHub, presence_group
from tests.support.clock import ManualClock

pytestmark = pytest.mark.django_db(transaction=True)


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
    clock = ManualClock()
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


# -- several daemons' hubs on one layer: each daemon's word, and what mends a stale one -------


class Subscriber:
    """A subscribed socket, as the hub sees one: it records the frames it is sent."""

    def __init__(self):
        self.frames = []

    async def send(self, text_data):
        self.frames.append(text_data)


async def shows(hub, user_id, status):
    """Wait until ``hub``'s subscribers would see ``user_id`` as ``status``."""
    for _ in range(300):
        watched = hub.watched.get(user_id)
        if watched is not None and watched.shown["status"] == status:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"user {user_id} shows {watched and watched.shown}, not {status}")


@pytest.fixture
async def hubs():
    """``hubs(n)``: n hubs on the process's layer, as n daemons' would be (own ids, own
    clocks); their tasks are stopped afterwards."""
    layer = get_channel_layer()
    made = []

    def make(count):
        for _ in range(count):
            hub = PresenceHub(layer, away_after=300, flush_interval=3600, clock=ManualClock())
            made.append(hub)
        return made[-count:]

    yield make
    for hub in made:
        if hub._ticker is not None:
            hub._ticker.cancel()
    groups = local_groups(layer)
    for hub in made:
        await groups.discard(presence.HUBS, hub)
        for user_id in list(hub.watched):
            await groups.discard(presence_group(user_id), hub)


async def knows(hub, user_id, states):
    """Wait until ``hub`` holds exactly these daemons' words for ``user_id``."""
    for _ in range(300):
        if hub.watched[user_id].states == states:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"user {user_id}: {hub.watched[user_id].states}, not {states}")


async def watch(hub, user_id, as_the_database_says):
    async def load(unknown):
        return {uid: (as_the_database_says, None, False) for uid in unknown}

    return await hub.subscribe(Subscriber(), [user_id], load)


async def test_active_on_one_daemon_and_idle_on_another_is_online(hubs):
    """The subscription starts from the database (online, daemons unknown); then daemon B's
    socket goes idle: daemon A, where the user is active, says online again."""
    a, b, watcher = hubs(3)
    a.opened(7)
    b.opened(7)
    await asyncio.sleep(0.05)
    (entry,) = await watch(watcher, 7, "online")
    assert entry["status"] == "online"
    b.clock.now += 301
    b.mark_away()
    await knows(watcher, 7, {a.id: "online", b.id: "away"})
    assert watcher.watched[7].shown["status"] == "online"
    a.clock.now += 301
    a.mark_away()  # idle everywhere: away
    await shows(watcher, 7, "away")
    b.touch(7)
    await shows(watcher, 7, "online")


async def test_a_reset_drops_a_dead_daemons_word(hubs):
    """A daemon that died said online; the user is away on a live one. The sweeper's reset
    (the database says online: the dead daemon's heartbeats were recent) is followed by the live
    daemon's own word, so the user shows away, and offline once the live socket closes."""
    live, sweeper, watcher = hubs(3)
    live.opened(7)
    live.clock.now += 301
    live.mark_away()
    await watch(watcher, 7, "away")
    groups = local_groups(get_channel_layer())
    dead = {"type": "presence.changed", "group": presence_group(7), "user_id": 7}
    await groups.publish({**dead, "status": "online", "daemon": "dead"})
    await shows(watcher, 7, "online")  # the dead daemon's word, and nothing takes it back...

    await sweeper.reset({7: ("online", None)})  # ... but the sweeper's reset
    await knows(watcher, 7, {live.id: "away"})
    assert watcher.watched[7].shown["status"] == "away"

    seen = "2030-01-01T12:00:00+00:00"
    await sweeper.reset({7: ("offline", seen)})  # a reset says offline while a socket is here:
    for _ in range(300):
        if watcher.watched[7].last_seen == seen:
            break
        await asyncio.sleep(0.01)
    assert watcher.watched[7].last_seen == seen
    await knows(watcher, 7, {live.id: "away"})  # the daemon that has it says its word again
