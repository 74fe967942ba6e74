"""Fixtures for the chat tests: users, connected clients and a Redis channel layer."""

import asyncio
import itertools
import json

import pytest
from channels.layers import channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator

from chatserver.asgi import application
from chatserver.chat import runtime
from chatserver.chat.auth.tokens import issue_access_token
from chatserver.chat.limits.ratelimit import limiter
from chatserver.chat.protocol import check_server_frame

ORIGIN = [(b"origin", b"http://localhost")]


class Client:
    """A WebsocketCommunicator that speaks the chat protocol."""

    _ids = itertools.count(1)

    def __init__(self, communicator, user):
        self.communicator = communicator
        self.user = user

    async def send(self, event_type, data=None, request_id=None):
        frame = {"event_type": event_type, "data": data or {}}
        if request_id is not None:
            frame["request_id"] = request_id
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def recv(self, timeout=2):
        return json.loads(await self.communicator.receive_from(timeout=timeout))

    async def request(self, event_type, data=None):
        """Send with a fresh request_id and return the frame answering it."""
        request_id = f"r{next(self._ids)}"
        await self.send(event_type, data, request_id)
        frame = await self.recv()
        assert frame.get("request_id") == request_id, frame
        return frame

    async def ok(self, event_type, data=None, expect=None):
        """A request that must succeed; returns the reply's data."""
        frame = await self.request(event_type, data)
        assert frame["eventType"] != "error", frame
        if expect is not None:
            assert frame["eventType"] == expect, frame
        return frame["data"]

    async def error(self, event_type, data=None):
        """A request that must fail; returns the error code."""
        frame = await self.request(event_type, data)
        assert frame["eventType"] == "error", frame
        assert frame["error"]["event_type"] == event_type
        return frame["error"]["code"]

    async def expect(self, event_type, timeout=2):
        frame = await self.recv(timeout)
        assert frame["eventType"] == event_type, frame
        return frame["data"]

    async def nothing(self, timeout=0.05):
        return await self.communicator.receive_nothing(timeout=timeout)

    async def close(self):
        await self.communicator.disconnect()


@pytest.fixture
def make_user(django_user_model):
    def make(username, **extra):
        extra.setdefault("email", f"{username}@example.com")
        return django_user_model.objects.create_user(username=username, password=None, **extra)

    return make


@pytest.fixture
def users(make_user):
    """Five users created before the test's event loop runs (the ORM is sync-only)."""

    class Users:
        pass

    people = Users()
    for name in ("alice", "bob", "carol", "dave", "erin"):
        setattr(people, name, make_user(name, first_name=name.title(), last_name="Example"))
    return people


async def open_client(user, notifications=True, timeout=2):
    """An authenticated socket through the full ASGI application (the caller closes it)."""
    path = f"/messaging/?token={issue_access_token(user)}"
    communicator = WebsocketCommunicator(application, path, headers=ORIGIN)
    connected, _ = await communicator.connect()
    assert connected
    client = Client(communicator, user)
    if notifications:
        try:
            await client.expect("chat.notifications", timeout)
        except BaseException:
            await client.close()
            raise
    return client


@pytest.fixture
async def connect():
    """Open authenticated sockets (``open_client``); closes them afterwards."""
    clients = []

    async def open_tracked(user, notifications=True):
        client = await open_client(user, notifications)
        clients.append(client)
        return client

    yield open_tracked
    for client in clients:
        await client.close()


@pytest.fixture(autouse=True)
def frames_match_schemas(monkeypatch):
    """Every text frame a chat test receives must match its event's schema in the catalogue
    (protocol/catalogue.py): a frame that does not fails the test where it is received."""
    receive_output = WebsocketCommunicator.receive_output

    async def checked(self, timeout=1):
        output = await receive_output(self, timeout)
        if output.get("type") == "websocket.send" and output.get("text") is not None:
            check_server_frame(output["text"])
        return output

    monkeypatch.setattr(WebsocketCommunicator, "receive_output", checked)


@pytest.fixture(autouse=True)
async def fresh_layer():
    """An empty in-memory layer and no leftover rate-limit buckets for every test; messages
    stored on the test's event loop as the daemon stores them (on PostgreSQL: chat.runtime)."""
    limiter.reset()
    runtime.start(asyncio.get_running_loop())
    yield
    await runtime.stop()
    layer = get_channel_layer()
    if hasattr(layer, "flush"):
        await layer.flush()


def layer_config(backend, redis_url):
    """A channels-redis layer on the test's Redis. socket_timeout None: redis-py's 5 s default
    would end idle sockets (channels-redis blocks longer than that in BZPOPMIN)."""
    return {
        "BACKEND": backend,
        "CONFIG": {"hosts": [{"address": redis_url, "socket_timeout": None}]},
    }


@pytest.fixture
def redis_layer(settings, redis_url):
    """The real channels-redis core layer for this test."""
    settings.CHANNEL_LAYERS = {
        "default": layer_config("channels_redis.core.RedisChannelLayer", redis_url)
    }
    yield get_channel_layer()
    channel_layers.backends.clear()


@pytest.fixture
def pubsub_layer(settings, redis_url):
    """The production layer (channels-redis pub/sub) for this test; yields its settings."""
    config = layer_config("channels_redis.pubsub.RedisPubSubChannelLayer", redis_url)
    settings.CHANNEL_LAYERS = {"default": config}
    yield config
    channel_layers.backends.clear()


@pytest.fixture
def chat_options(settings):
    """Override some REALTIME_CHAT_MESSAGING options, keeping the others."""

    def override(**options):
        settings.REALTIME_CHAT_MESSAGING = {**settings.REALTIME_CHAT_MESSAGING, **options}

    return override


def team_room(users):
    """``(room id, message id)``: alice owns the group "team", bob is an admin, carol a member,
    and alice said hello (seq 3); set up through the services the handlers call."""
    from chatserver.chat.services import messages as message_service
    from chatserver.chat.services import rooms as room_service
    from chatserver.chat.services.permissions import load_access

    change = room_service.create_room(
        users.alice, {"type": "group", "name": "team", "members": [users.bob.pk, users.carol.pk]}
    )
    room_id = change.data["room"]["id"]
    room_service.modify_room(
        users.alice,
        load_access(users.alice, room_id),
        room_id,
        {"room_id": room_id, "action": "add_admin", "members": [users.bob.pk]},
    )
    sent, _ = message_service.send_message(users.alice, room_id, {"content": "hello"})
    return room_id, sent["message"]["id"]
