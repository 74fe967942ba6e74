"""How fast sockets may be opened: per user and per client address, across reconnects."""

import pytest
from channels.testing import WebsocketCommunicator

from chatserver.asgi import application
from chatserver.chat.auth.tokens import issue_access_token
from chatserver.chat.models import Session
from chatserver.chat.protocol import CLOSE_TOO_MANY_CONNECTIONS, CLOSE_TOO_MANY_SOCKETS

from .conftest import ORIGIN

pytestmark = pytest.mark.django_db(transaction=True)


async def open_socket(user, address="10.0.0.1"):
    """``(communicator, first output)``: the first output is a close for a refused socket."""
    path = f"/messaging/?token={issue_access_token(user)}" if user else "/messaging/"
    communicator = WebsocketCommunicator(application, path, headers=ORIGIN)
    # What Daphne sets from the peer (None for a Unix socket).
    communicator.scope["client"] = (address, 50000) if address else None
    connected, _ = await communicator.connect()
    assert connected
    return communicator, await communicator.receive_output(timeout=2)


def refused(output):
    return output == {"type": "websocket.close", "code": CLOSE_TOO_MANY_CONNECTIONS}


async def test_a_user_opening_sockets_too_fast_gets_4429(users, chat_options):
    chat_options(RATE_LIMITS={"connect": {"rate": 0.001, "burst": 3}})
    outputs = []
    for _ in range(3):
        communicator, output = await open_socket(users.alice)
        outputs.append(output)
        await communicator.disconnect()  # closing does not give the token back
    assert not any(refused(output) for output in outputs)
    communicator, output = await open_socket(users.alice)
    assert refused(output)
    await communicator.disconnect()
    communicator, output = await open_socket(users.bob)  # another user has a budget of his own
    assert not refused(output)
    await communicator.disconnect()


async def test_one_address_opening_sockets_too_fast_gets_4429_before_authentication(
    users, chat_options
):
    chat_options(RATE_LIMITS={"connect_address": {"rate": 0.001, "burst": 2}})
    for user in (users.alice, users.bob):
        communicator, output = await open_socket(user, address="10.6.6.6")
        assert not refused(output)
        await communicator.disconnect()
    communicator, output = await open_socket(users.carol, address="10.6.6.6")
    assert refused(output)
    await communicator.disconnect()
    # Refused before authentication: no credentials at all get 4429 too, not 4001.
    communicator, output = await open_socket(None, address="10.6.6.6")
    assert refused(output)
    await communicator.disconnect()
    assert await Session.objects.acount() == 2
    communicator, output = await open_socket(users.carol, address="10.7.7.7")
    assert not refused(output)
    await communicator.disconnect()


async def test_loopback_and_unix_peers_are_not_limited_by_address(users, chat_options):
    """Behind a proxy on this host without --proxy-headers every client would share one
    address: only real client addresses have a bucket."""
    chat_options(RATE_LIMITS={"connect_address": {"rate": 0.001, "burst": 1}})
    for address in ("127.0.0.1", "::1", "127.0.0.1", None):
        communicator, output = await open_socket(users.alice, address=address)
        assert not refused(output), address
        await communicator.disconnect()


async def test_past_max_sockets_per_user_the_newest_closes_with_4409(users, chat_options):
    chat_options(MAX_SOCKETS_PER_USER=2)
    first, output = await open_socket(users.alice)
    second, output_2 = await open_socket(users.alice)
    assert output["type"] == output_2["type"] == "websocket.send"  # chat.notifications
    third, output = await open_socket(users.alice)
    assert output == {"type": "websocket.close", "code": CLOSE_TOO_MANY_SOCKETS}
    await third.send_to(text_data='{"event_type": "session.heartbeat", "request_id": "h"}')
    assert await third.receive_nothing(timeout=0.3)  # frames racing the close are not served
    await third.disconnect()
    await first.disconnect()
    await first.wait()
    # A closed socket frees its place; another user was never affected.
    fourth, output = await open_socket(users.alice)
    assert output["type"] == "websocket.send"
    other, output = await open_socket(users.bob)
    assert output["type"] == "websocket.send"
    for communicator in (second, fourth, other):
        await communicator.disconnect()
    assert await Session.objects.filter(closed_at__isnull=True).acount() == 0
