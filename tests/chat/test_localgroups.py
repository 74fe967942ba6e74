"""Process-local groups: one layer group for every process, direct prepared frames, healing."""

import asyncio

import pytest
from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from chatserver.chat.delivery.fanout import ROOM_EVENT
from chatserver.chat.delivery.localgroups import BUS, LAYER_BATCH, LocalGroups, unbatched

from .races import wait_for


class Member:
    """Stands in for a ChatConsumer: records what the local groups hand it."""

    def __init__(self, name, sender=None, room_id=1, skip=False):
        self.name = name
        self.direct_sender = sender
        self.room_id = room_id
        self.skip = skip
        self.sent = []
        self.user_events = []

    def wants_room_frame(self, message):
        return not self.skip and message["room_id"] == self.room_id

    async def send(self, text_data):
        self.sent.append(text_data)

    async def user_event(self, message):
        self.user_events.append(message["text"])


class Sender:
    """The daemon's direct-sender interface, counting frame preparations."""

    def __init__(self, factory, open_=True):
        self.factory = factory
        self.open = open_
        self.frames = []

    def is_open(self):
        return self.open

    def prepare(self, text):
        self.factory.prepared += 1
        return ("prepared", text)

    def send_prepared(self, frame):
        self.frames.append(frame)


class Factory:
    prepared = 0


class CountingLayer(InMemoryChannelLayer):
    """The in-memory layer, counting group adds and discards."""

    def __init__(self):
        super().__init__()
        self.calls = []

    async def group_add(self, group, channel):
        self.calls.append("group_add")
        await super().group_add(group, channel)

    async def group_discard(self, group, channel):
        self.calls.append("group_discard")
        await super().group_discard(group, channel)


def room_message(text, room_id=1):
    return {"type": ROOM_EVENT, "group": f"room.{room_id}", "room_id": room_id, "text": text}


async def test_groups_cost_one_layer_subscription_per_process_whatever_joins_and_leaves():
    """Sockets joining and leaving rooms (a reconnect storm) ask the layer nothing: the process
    is in the one group every process is in from its first add until it closes."""
    layer = CountingLayer()
    groups = LocalGroups(layer)
    first, second = Member("a"), Member("b")
    await groups.add("room.1", first)
    await groups.add("room.1", second)
    await groups.add("user.7", first)
    await groups.discard("room.1", first)
    await groups.discard("user.7", first)
    await groups.add("room.2", Member("c", room_id=2))
    assert layer.calls == ["group_add"]
    assert list(layer.groups[BUS]) == [groups.channel] and set(layer.groups) == {BUS}
    assert set(groups.members) == {"room.1", "room.2"} and groups.members["room.1"] == {second}

    await layer.group_send(BUS, room_message("hello"))  # as another process publishes
    await wait_for(lambda: second.sent)
    assert second.sent == ["hello"] and not first.sent
    await groups.close()
    assert layer.calls == ["group_add", "group_discard"] and not layer.groups.get(BUS)


async def test_a_consumer_joins_and_leaves_several_groups_in_one_call():
    """A connect's groups (its user's and its rooms') go in one call, as do a disconnect's;
    groups nobody is left in are forgotten, and a group the consumer was not in is no error."""
    layer = CountingLayer()
    groups = LocalGroups(layer)
    member, other = Member("a", room_id=2), Member("b", room_id=2)
    await groups.add_many([], member)  # nothing to join: the bus is not asked
    assert layer.calls == []
    await groups.add_many(["user.7", "room.1", "room.2"], member)
    await groups.add("room.2", other)
    assert layer.calls == ["group_add"]
    assert {g for g, m in groups.members.items() if member in m} == {"user.7", "room.1", "room.2"}

    await layer.group_send(BUS, room_message("in room 2", room_id=2))
    await wait_for(lambda: member.sent and other.sent)
    await groups.discard_many(["user.7", "room.1", "room.2", "room.9"], member)
    assert set(groups.members) == {"room.2"} and groups.members["room.2"] == {other}
    await layer.group_send(BUS, room_message("after", room_id=2))
    await wait_for(lambda: len(other.sent) == 2)
    assert member.sent == ["in room 2"] and other.sent == ["in room 2", "after"]
    await groups.close()


async def test_a_failed_subscription_is_raised_and_the_next_add_tries_again():
    class FlakyLayer(CountingLayer):
        failures = 1

        async def group_add(self, group, channel):
            if self.failures:
                self.failures -= 1
                raise ConnectionError("redis is not there yet")
            await super().group_add(group, channel)

    layer = FlakyLayer()
    groups = LocalGroups(layer)
    member = Member("a")
    with pytest.raises(ConnectionError):
        await groups.add("room.1", member)
    await groups.add("room.1", member)
    assert list(layer.groups[BUS]) == [groups.channel]
    await layer.group_send(BUS, room_message("now subscribed"))
    await wait_for(lambda: member.sent)
    await groups.close()


async def test_a_process_hands_a_group_message_only_to_that_groups_members():
    layer = InMemoryChannelLayer()
    groups = LocalGroups(layer)
    in_room, elsewhere = Member("a"), Member("b", room_id=2)
    await groups.add("room.1", in_room)
    await groups.add("room.2", elsewhere)
    await layer.group_send(BUS, room_message("hello"))
    await layer.group_send(BUS, room_message("nobody here", room_id=3))
    await layer.group_send(BUS, room_message("to room 2", room_id=2))
    await wait_for(lambda: elsewhere.sent)
    assert in_room.sent == ["hello"] and elsewhere.sent == ["to room 2"]
    await groups.close()


async def test_direct_senders_get_one_prepared_frame_and_others_the_asgi_send():
    layer = InMemoryChannelLayer()
    groups = LocalGroups(layer)
    factory = Factory()
    direct = [Member(f"d{i}", Sender(factory)) for i in range(3)]
    closed = Member("closed", Sender(factory, open_=False))
    plain, skipped = Member("plain"), Member("typist", Sender(factory), skip=True)
    for member in [*direct, closed, plain, skipped]:
        await groups.add("room.1", member)

    await groups.deliver(room_message("frame"))
    assert factory.prepared == 1
    assert all(m.direct_sender.frames == [("prepared", "frame")] for m in direct)
    assert closed.sent == ["frame"] and closed.direct_sender.frames == []
    assert plain.sent == ["frame"]
    assert skipped.sent == [] and skipped.direct_sender.frames == []
    await groups.close()


@pytest.mark.parametrize("count", [1, 3], ids=["one message", "a batch from another process"])
async def test_other_group_messages_call_the_member_handler_in_order(count):
    layer = InMemoryChannelLayer()
    groups = LocalGroups(layer)
    member = Member("a")
    await groups.add("user.7", member)
    messages = [{"type": "user.event", "group": "user.7", "text": f"m{i}"} for i in range(count)]
    if count == 1:
        await layer.group_send(BUS, messages[0])
    else:
        batch = {"type": LAYER_BATCH, "group": BUS, "publisher": "elsewhere"}
        await layer.group_send(BUS, {**batch, "messages": messages})
    await wait_for(lambda: len(member.user_events) == count)
    assert member.user_events == [message["text"] for message in messages]
    await groups.close()


async def test_refresh_heals_a_layer_that_forgot_the_process():
    layer = InMemoryChannelLayer()
    groups = LocalGroups(layer, refresh_interval=0.05)
    member = Member("a")
    await groups.add("room.1", member)
    layer.groups.clear()  # what a Redis restart or group expiry does to the layer's state
    await wait_for(lambda: BUS in layer.groups)
    await layer.group_send(BUS, room_message("after the restart"))
    await wait_for(lambda: member.sent)
    assert member.sent == ["after the restart"]
    await groups.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("layer_class", [RedisChannelLayer, RedisPubSubChannelLayer])
async def test_each_process_gets_a_redis_group_message_once(redis_url, layer_class):
    """Two layer instances stand for two daemon processes sharing one Redis."""
    hosts = [{"address": redis_url, "socket_timeout": None}]
    layers = [layer_class(hosts=hosts), layer_class(hosts=hosts)]
    processes = [LocalGroups(layer) for layer in layers]
    members = [[Member(f"p{p}m{m}") for m in range(3)] for p in range(2)]
    for groups, local_members in zip(processes, members, strict=True):
        for member in local_members:
            await groups.add("room.1", member)

    await layers[0].group_send(BUS, room_message("across processes"))
    everyone = [m for local in members for m in local]
    await wait_for(lambda: all(m.sent for m in everyone))
    assert all(m.sent == ["across processes"] for m in everyone)
    if layer_class is RedisChannelLayer:  # one layer delivery per process, not per member
        group_key = layers[0]._group_key(BUS)
        assert len(await layers[0].connection(0).zrange(group_key, 0, -1)) == 2

    for groups, layer in zip(processes, layers, strict=True):
        await groups.close()
        await layer.flush()


class HeldLayer(InMemoryChannelLayer):
    """Holds every group_send until released: shows what is delivered before the layer acts."""

    def __init__(self):
        super().__init__()
        self.release = asyncio.Event()

    async def group_send(self, group, message):
        await self.release.wait()
        await super().group_send(group, message)


async def test_publish_reaches_local_members_before_the_layer_and_only_once():
    layer = HeldLayer()
    groups = LocalGroups(layer)
    member, other_room = Member("a"), Member("b", room_id=2)
    await groups.add("room.1", member)
    await groups.add("room.2", other_room)
    publishing = asyncio.ensure_future(groups.publish(room_message("now")))
    await wait_for(lambda: member.sent)
    assert member.sent == ["now"] and not publishing.done()  # the layer has not sent it yet
    layer.release.set()
    await publishing
    await layer.group_send(BUS, room_message("later"))  # arrives after the layer's copy
    await wait_for(lambda: len(member.sent) == 2)
    assert member.sent == ["now", "later"]  # the copy the layer brought back was skipped
    assert other_room.sent == []
    await groups.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("count", [1, 300], ids=["one", "a burst, in batches"])
async def test_publish_reaches_the_other_processes_through_redis_once_in_order(redis_url, count):
    hosts = [{"address": redis_url, "socket_timeout": None}]
    layers = [RedisPubSubChannelLayer(hosts=hosts) for _ in range(2)]
    processes = [LocalGroups(layer) for layer in layers]
    members = [Member("here"), Member("there")]
    for groups, member in zip(processes, members, strict=True):
        await groups.add("room.1", member)
    texts = [f"message {i}" for i in range(count)]
    for text in texts:
        await processes[0].publish(room_message(text), wait=False)
    await wait_for(lambda: len(members[1].sent) >= count, timeout=20)
    await asyncio.sleep(0.2)  # time for a duplicate to show up, if one were coming
    assert members[0].sent == texts and members[1].sent == texts
    for groups, layer in zip(processes, layers, strict=True):
        await groups.close()
        await layer.flush()


async def test_publish_hands_other_messages_to_local_handlers_in_publish_order():
    """A membership change and the room frame after it reach a local member in that order, as
    a new member and the first message sent right after the room was created do."""
    layer = HeldLayer()
    groups = LocalGroups(layer)
    member = Member("a")
    await groups.add("user.7", member)
    await groups.add("room.1", member)
    publishing = asyncio.ensure_future(
        groups.publish({"type": "user.event", "group": "user.7", "text": "joined"})
    )
    await wait_for(lambda: member.user_events)
    assert not publishing.done()
    layer.release.set()
    await publishing
    await groups.publish(room_message("first message"))
    assert (member.user_events, member.sent) == (["joined"], ["first message"])
    await asyncio.sleep(0.05)  # the layer's copies come back and are skipped
    assert (member.user_events, member.sent) == (["joined"], ["first message"])
    await groups.close()


class RecordingLayer(InMemoryChannelLayer):
    """Records the texts the layer was given, in order, and the texts of each send; the first
    send takes longest."""

    def __init__(self, fail=()):
        super().__init__()
        self.texts = []
        self.sends = []
        self.fail = set(fail)
        self.started = False

    async def group_send(self, group, message):
        texts = [each["text"] for each in unbatched(message)]
        first, self.started = not self.started, True
        await asyncio.sleep(0.05 if first else 0)
        if self.fail.intersection(texts):
            raise ConnectionError("redis is gone")
        self.texts += texts
        self.sends.append(texts)
        await super().group_send(group, message)


async def test_publish_without_wait_returns_after_the_local_delivery():
    layer = HeldLayer()
    groups = LocalGroups(layer)
    member = Member("a")
    await groups.add("room.1", member)
    await groups.publish(room_message("one"), wait=False)  # the layer still holds it
    assert member.sent == ["one"]
    layer.release.set()
    await groups.close()


async def test_the_layer_gets_messages_in_publish_order():
    layer = RecordingLayer()
    groups = LocalGroups(layer)
    await groups.add("room.1", Member("a"))
    for text in ("one", "two", "three"):
        await groups.publish(room_message(text), wait=False)
    await wait_for(lambda: len(layer.texts) == 3)
    assert layer.texts == ["one", "two", "three"]  # "one" was slowest, and still went first
    await groups.close()


async def test_what_several_rooms_publish_meanwhile_leaves_as_one_layer_send():
    layer = RecordingLayer()
    groups = LocalGroups(layer)
    await groups.add("room.1", Member("a"))
    await groups.add("room.2", Member("b", room_id=2))
    await groups.publish(room_message("first"), wait=False)
    await groups.publish(room_message("room 1"), wait=False)
    await groups.publish(room_message("room 2", room_id=2), wait=False)
    await groups.publish({"type": "user.event", "group": "user.7", "text": "user 7"})
    assert layer.sends == [["first"], ["room 1", "room 2", "user 7"]]
    await groups.close()


async def test_a_layer_failure_is_raised_to_a_waiting_publisher_and_logged_for_the_others(caplog):
    layer = RecordingLayer(fail={"lost", "refused"})
    groups = LocalGroups(layer)
    member = Member("a")
    await groups.add("room.1", member)
    await groups.publish(room_message("lost"), wait=False)
    with pytest.raises(ConnectionError):
        await groups.publish(room_message("refused"))
    await groups.publish(room_message("after"))
    assert member.sent == ["lost", "refused", "after"]  # local members got every one
    assert layer.texts == ["after"]
    assert "publishing to the layer failed" in caplog.text
    await groups.close()


async def test_a_full_outbox_makes_the_publisher_wait_its_turn():
    layer = HeldLayer()
    groups = LocalGroups(layer, outbox_limit=1)
    await groups.add("room.1", Member("a"))
    await groups.publish(room_message("first"), wait=False)
    second = asyncio.ensure_future(groups.publish(room_message("second"), wait=False))
    await asyncio.sleep(0.05)
    assert not second.done()
    layer.release.set()
    await asyncio.wait_for(second, 2)
    await groups.close()


async def test_close_sends_what_the_outbox_holds():
    layer = RecordingLayer()
    groups = LocalGroups(layer)
    await groups.add("room.1", Member("a"))
    await groups.publish(room_message("last words"), wait=False)
    assert layer.texts == []
    await groups.close()
    assert layer.texts == ["last words"]


async def test_messages_queued_during_a_send_leave_together_in_order():
    layer = RecordingLayer()
    groups = LocalGroups(layer)
    await groups.add("room.1", Member("a"))
    for text in ("one", "two", "three", "four"):
        await groups.publish(room_message(text), wait=False)
    await groups.publish(room_message("five"))  # returns once the layer has it
    assert layer.sends == [["one"], ["two", "three", "four", "five"]]
    await groups.close()


async def test_a_layer_batch_keeps_to_its_limits():
    layer = RecordingLayer()
    groups = LocalGroups(layer, batch_limit=2, batch_bytes=10)
    await groups.add("room.1", Member("a"))
    for text in ("first", "a", "b", "c", "0123456789", "d", "e"):
        await groups.publish(room_message(text), wait=False)
    await wait_for(lambda: len(layer.texts) == 7)
    # at most two messages a send, and no more than 10 characters of text unless alone
    assert layer.sends == [["first"], ["a", "b"], ["c"], ["0123456789"], ["d", "e"]]
    await groups.close()


async def test_a_failed_batch_is_raised_to_every_waiting_publisher_in_it():
    layer = RecordingLayer(fail={"refused"})
    groups = LocalGroups(layer)
    member = Member("a")
    await groups.add("room.1", member)
    await groups.publish(room_message("slow first"), wait=False)
    waiting = [
        asyncio.ensure_future(groups.publish(room_message(text)))
        for text in ("fine", "refused", "also fine")
    ]
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)
    assert layer.sends == [["slow first"]]
    assert member.sent == ["slow first", "fine", "refused", "also fine"]  # locally, all of them
    await groups.close()
