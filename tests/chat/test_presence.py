"""Presence: presence.subscribe, the dispatch frames that follow (online, away, offline with
last_seen), batching per subscriber, hiding, and the way changes travel through the layer."""

import asyncio
import time

import pytest
from channels.layers import get_channel_layer

from chatserver.chat.models import PresenceSetting
from chatserver.chat.services import rooms as room_service

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fast_presence(chat_options):
    chat_options(PRESENCE_AWAY_AFTER=1.0, PRESENCE_FLUSH_INTERVAL=0.2)


@pytest.fixture
def room(users):
    """alice, bob and carol in one group."""
    members = [users.bob.pk, users.carol.pk]
    change = room_service.create_room(
        users.alice, {"type": "group", "name": "team", "members": members}
    )
    return change.data["room"]["id"]


async def changes_until(client, done, timeout=10):
    """presence.dispatch frames until ``done(latest entries by user)`` holds; the frames."""
    frames, latest = [], {}
    deadline = time.monotonic() + timeout
    while not done(latest):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"presence never got there: {latest}"
        frame = await client.recv(timeout=remaining)
        if frame["eventType"] != "presence.dispatch":
            continue
        frames.append(frame)
        for entry in frame["data"]["users"]:
            latest[entry["user_id"]] = entry
    return frames, latest


def status(user, wanted):
    return lambda latest: latest.get(user.pk, {}).get("status") == wanted


async def test_online_away_online_offline(connect, users, room, fast_presence):
    bob = await connect(users.bob)
    reply = await bob.ok("presence.subscribe", {"room_id": room}, expect="presence.dispatch")
    assert sorted(e["user_id"] for e in reply["users"]) == [users.alice.pk, users.carol.pk]
    assert {e["status"] for e in reply["users"]} == {"offline"}

    alice = await connect(users.alice)
    await changes_until(bob, status(users.alice, "online"))
    # No frame or heartbeat for PRESENCE_AWAY_AFTER: away.
    await changes_until(bob, status(users.alice, "away"))
    await alice.ok("session.heartbeat")
    await changes_until(bob, status(users.alice, "online"))
    await alice.close()
    _, latest = await changes_until(bob, status(users.alice, "offline"))
    assert latest[users.alice.pk]["last_seen"] is not None
    assert (await PresenceSetting.objects.aget(user=users.alice)).last_seen is not None

    # A later subscriber reads it from the database.
    carol = await connect(users.carol)
    (alice_now,) = [
        e
        for e in (await carol.ok("presence.subscribe", {"room_id": room}))["users"]
        if e["user_id"] == users.alice.pk
    ]
    assert alice_now == latest[users.alice.pk]


async def test_a_user_is_online_while_any_socket_is(connect, users, room, fast_presence):
    bob = await connect(users.bob)
    await bob.ok("presence.subscribe", {})  # the peers of bob's rooms
    phone = await connect(users.alice)
    laptop = await connect(users.alice)
    await changes_until(bob, status(users.alice, "online"))
    await phone.close()
    await laptop.ok("session.heartbeat")
    assert await bob.nothing(0.8)  # no offline while the laptop is there
    await laptop.close()
    await changes_until(bob, status(users.alice, "offline"))


async def test_hidden_users_look_offline(connect, users, room, fast_presence):
    bob = await connect(users.bob)
    await bob.ok("presence.subscribe", {"room_id": room})
    carol = await connect(users.carol)
    await changes_until(bob, status(users.carol, "online"))
    assert await carol.ok("presence.hide", {"hidden": True}) == {"hidden": True}
    _, latest = await changes_until(bob, status(users.carol, "offline"))
    assert latest[users.carol.pk]["last_seen"] is None
    # Hidden across reconnects and for new subscribers too.
    await carol.close()
    carol = await connect(users.carol)
    alice = await connect(users.alice)
    seen = (await alice.ok("presence.subscribe", {"room_id": room}))["users"]
    assert {"user_id": users.carol.pk, "status": "offline", "last_seen": None} in seen
    # Reconnecting while hidden told bob nothing new (alice coming online after it, did).
    _, latest = await changes_until(bob, status(users.alice, "online"))
    assert users.carol.pk not in latest
    await carol.ok("presence.hide", {"hidden": False})
    await changes_until(bob, status(users.carol, "online"))


async def test_subscribing_needs_the_room(connect, users, room):
    dave = await connect(users.dave)
    assert await dave.error("presence.subscribe", {"room_id": room}) == 4004
    assert (await dave.ok("presence.subscribe", {}))["users"] == []  # no peers


@pytest.fixture
def crowd(users, make_user):
    """Thirty members of alice's room "big"."""
    members = [make_user(f"member{i}") for i in range(30)]
    change = room_service.create_room(
        users.alice, {"type": "group", "name": "big", "members": [u.pk for u in members]}
    )
    return change.data["room"]["id"], members


async def test_many_changes_are_batched_per_subscriber(connect, users, crowd, chat_options):
    """Thirty members come online at once: the subscriber gets a few frames, at least a flush
    interval apart, each carrying several of them."""
    interval = 0.5
    chat_options(PRESENCE_FLUSH_INTERVAL=interval)
    room_id, crowd = crowd
    alice = await connect(users.alice)
    await alice.ok("presence.subscribe", {"room_id": room_id})
    started = time.monotonic()
    await asyncio.gather(*(connect(user) for user in crowd))

    def everyone_online(latest):
        return all(latest.get(u.pk, {}).get("status") == "online" for u in crowd)

    arrivals, frames = [], []
    deadline = time.monotonic() + 20
    latest = {}
    while not everyone_online(latest):
        frame = await alice.recv(timeout=max(0.1, deadline - time.monotonic()))
        arrivals.append(time.monotonic())
        frames.append(frame)
        for entry in frame["data"]["users"]:
            latest[entry["user_id"]] = entry
    assert all(f["eventType"] == "presence.dispatch" for f in frames)
    assert len(frames) <= len(crowd) // 3, [len(f["data"]["users"]) for f in frames]
    # Flushes are an interval apart: in the time it took, no more frames than flushes.
    assert len(frames) <= (arrivals[-1] - started) / interval + 1


async def test_unsubscribed_sockets_get_no_presence_frames(connect, users, room, fast_presence):
    bob = await connect(users.bob)
    await bob.ok("presence.subscribe", {"room_id": room})
    await bob.ok("presence.unsubscribe")
    carol = await connect(users.carol)
    await carol.ok("session.heartbeat")
    assert await bob.nothing(0.6)


# -- through Redis: what another daemon publishes reaches this one's subscribers -------------


async def test_presence_travels_between_daemons_through_redis_pubsub(
    connect, users, room, fast_presence, pubsub_layer
):
    from channels_redis.pubsub import RedisPubSubChannelLayer

    from chatserver.chat.delivery.localgroups import send_to_every_process

    bob = await connect(users.bob)
    await bob.ok("presence.subscribe", {"room_id": room})
    alice = await connect(users.alice)  # on this daemon
    await changes_until(bob, status(users.alice, "online"))

    # Carol is on another daemon: its presence messages reach us only through Redis.
    other_daemon = RedisPubSubChannelLayer(**pubsub_layer["CONFIG"])
    group = f"presence.{users.carol.pk}"
    message = {"type": "presence.changed", "group": group, "user_id": users.carol.pk}
    try:
        online = {**message, "status": "online", "daemon": "d2"}
        await send_to_every_process(other_daemon, online)
        await changes_until(bob, status(users.carol, "online"))
        seen = "2030-01-01T12:00:00+00:00"
        offline = {**message, "status": "offline", "last_seen": seen}
        await send_to_every_process(other_daemon, offline)
        _, latest = await changes_until(bob, status(users.carol, "offline"))
        assert latest[users.carol.pk]["last_seen"] == seen
    finally:
        await other_daemon.flush()
    assert get_channel_layer() is not other_daemon
    await alice.close()
    await changes_until(bob, status(users.alice, "offline"))


async def test_a_daemon_says_its_word_again_after_a_stale_offline(
    connect, users, room, fast_presence, pubsub_layer
):
    """Another daemon says alice went offline (its socket of hers closed as this one opened
    here): the recount it sends to every hub through Redis makes this daemon, where alice is,
    say online again, for the subscribers on every daemon."""
    from channels_redis.pubsub import RedisPubSubChannelLayer

    from chatserver.chat.delivery.localgroups import BUS, send_to_every_process, unbatched

    other_daemon = RedisPubSubChannelLayer(**pubsub_layer["CONFIG"])
    group = f"presence.{users.alice.pk}"
    hubs = "presence.hubs"
    listening = await other_daemon.new_channel()
    await other_daemon.group_add(BUS, listening)  # as every daemon is

    async def next_word_from_here():
        while True:
            message = await asyncio.wait_for(other_daemon.receive(listening), 10)
            for each in unbatched(message):
                # Only alice's presence, and not the other daemon's own word, which comes back.
                if each.get("group") == group and each["daemon"] != "d2":
                    return each["type"], each["user_id"], each["status"]

    try:
        await connect(users.alice)  # here
        assert await next_word_from_here() == ("presence.changed", users.alice.pk, "online")
        stale = {"group": group, "user_id": users.alice.pk, "status": "offline", "daemon": "d2"}
        await send_to_every_process(other_daemon, {"type": "presence.changed", **stale})
        recount = {**stale, "type": "presence.recount", "group": hubs}
        await send_to_every_process(other_daemon, recount)
        assert await next_word_from_here() == ("presence.changed", users.alice.pk, "online")
    finally:
        await other_daemon.flush()


# -- what the heartbeat sweeper tells presence about ----------------------------------------


def test_swept_users_are_offline_with_their_last_heartbeat_unless_a_session_is_left(users):
    from datetime import timedelta

    from django.utils import timezone

    from chatserver.chat.models import Session
    from chatserver.chat.protocol import CLOSE_HEARTBEAT_EXPIRED
    from chatserver.chat.services.presence import swept

    now = timezone.now()
    heartbeat = now - timedelta(seconds=90)

    def session(user, name, last_heartbeat, closed_at=None, code=CLOSE_HEARTBEAT_EXPIRED):
        Session.objects.create(
            user=user,
            channel_name=name,
            last_heartbeat=last_heartbeat,
            closed_at=closed_at,
            close_code=code if closed_at else None,
        )

    session(users.alice, "dead-1", heartbeat, closed_at=now)  # alice: on the dead daemon only
    session(users.alice, "dead-2", heartbeat - timedelta(seconds=5), closed_at=now)
    session(users.bob, "dead-3", heartbeat, closed_at=now)  # bob: also on a live daemon
    session(users.bob, "live", now - timedelta(seconds=2))
    session(users.carol, "dead-4", heartbeat, closed_at=now)  # carol: seen later already
    later = now - timedelta(seconds=10)
    PresenceSetting.objects.create(user=users.carol, last_seen=later)
    session(users.dave, "closed-earlier", heartbeat, closed_at=now - timedelta(seconds=1))

    assert swept(now, away_after=300) == {
        users.alice.pk: ("offline", heartbeat.isoformat()),
        users.bob.pk: ("online", None),
        users.carol.pk: ("offline", later.isoformat()),
    }
    assert PresenceSetting.objects.get(user=users.alice).last_seen == heartbeat
    assert not PresenceSetting.objects.filter(user=users.bob).exists()
    assert swept(now + timedelta(seconds=1), away_after=300) == {}


async def test_a_new_socket_asks_whether_its_presence_is_hidden(connect, users, room):
    carol = await connect(users.carol)
    assert await carol.ok("presence.hide", {}) == {"hidden": False}  # never set
    assert await carol.ok("presence.hide", {"hidden": True}) == {"hidden": True}
    await carol.close()
    carol = await connect(users.carol)  # after a login: only the stored setting knows
    assert await carol.ok("presence.hide", {}) == {"hidden": True}
    assert (await PresenceSetting.objects.aget(user=users.carol)).hidden
    assert await carol.error("presence.hide", {"hidden": "yes"}) == 4003
    assert await carol.ok("presence.hide", {"hidden": False}) == {"hidden": False}
    assert await carol.ok("presence.hide", {}) == {"hidden": False}


def test_last_sockets_closing_together_are_recorded_in_one_batch(users):
    """offline_since_many: users with a session left elsewhere stay online (None); the others
    get last_seen recorded together; a deleted user is skipped, not an error for the batch."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from chatserver.chat.models import Session
    from chatserver.chat.services.presence import offline_since_many

    Session.objects.create(
        user=users.bob, channel_name="bob-elsewhere", last_heartbeat=timezone.now()
    )
    now = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        answers = offline_since_many([users.alice.pk, users.bob.pk, users.carol.pk], now)
    assert answers == [now, None, now]
    assert len(queries) <= 4  # open sessions, the upsert (in its transaction)
    seen = dict(PresenceSetting.objects.values_list("user_id", "last_seen"))
    assert seen == {users.alice.pk: now, users.carol.pk: now}
    later = timezone.now()
    assert offline_since_many([users.alice.pk, 999_999], later) == [later, None]


async def test_presence_switched_off_answers_4007_and_stores_nothing(
    connect, users, room, chat_options
):
    chat_options(ENABLE_PRESENCE=False)
    alice = await connect(users.alice)
    assert await alice.error("presence.subscribe", {"room_id": room}) == 4007
    assert await alice.error("presence.unsubscribe", {}) == 4007
    assert await alice.error("presence.hide", {"hidden": True}) == 4007
    assert await alice.error("presence.hide", {}) == 4007
    assert not await PresenceSetting.objects.filter(user=users.alice).aexists()
    # Everything else goes on as usual.
    await alice.ok("message.send", {"room_id": room, "content": "still here"})
