"""Revocation that bites: a password change, a deactivation, a logout or a reused refresh token
closes the sockets it should (4001) and refuses the tokens it should."""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chatserver.asgi import application
from chatserver.chat.auth.tokens import issue_access_token
from chatserver.chat.models import TokenFamily
from chatserver.chat.protocol import CLOSE_UNAUTHENTICATED

from .conftest import ORIGIN

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse 9"


@pytest.fixture(autouse=True)
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice(users):
    users.alice.set_password(PASSWORD)
    users.alice.save()
    return users.alice


async def post(client, path, body):
    response = await sync_to_async(client.post)(
        path, data=json.dumps(body), content_type="application/json"
    )
    return response.status_code, (response.json() if response.content else None)


async def login(client):
    status, pair = await post(client, "/api/token/", {"username": "alice", "password": PASSWORD})
    assert status == 200, pair
    return pair


async def open_socket(token):
    communicator = WebsocketCommunicator(application, f"/messaging/?token={token}", headers=ORIGIN)
    connected, _ = await communicator.connect()
    assert connected
    first = await communicator.receive_output(timeout=2)
    return communicator, first


async def opens(token):
    """Whether a socket with this token is let in (else it is closed with 4001 at once)."""
    communicator, first = await open_socket(token)
    await communicator.disconnect()
    if first["type"] == "websocket.close":
        assert first["code"] == CLOSE_UNAUTHENTICATED
        return False
    return True


async def live_socket(token):
    communicator, first = await open_socket(token)
    assert first["type"] == "websocket.send", first  # chat.notifications
    return communicator


async def closed_with_4001(communicator):
    output = await communicator.receive_output(timeout=3)
    await communicator.disconnect()
    return output == {"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED}


async def still_open(communicator):
    await communicator.send_to(text_data=json.dumps({"event_type": "session.heartbeat"}))
    frame = json.loads(await communicator.receive_from(timeout=2))
    await communicator.disconnect()
    return frame["eventType"] == "session.heartbeat"


async def test_a_password_change_closes_every_socket_and_refuses_every_earlier_token(client, alice):
    pair = await login(client)
    by_token = await live_socket(pair["access"])
    by_bare_token = await live_socket(issue_access_token(alice))

    alice.set_password("a new secret 10")
    await alice.asave()

    assert await closed_with_4001(by_token)
    assert await closed_with_4001(by_bare_token)
    assert not await opens(pair["access"])
    assert (await post(client, "/api/token/refresh/", {"refresh": pair["refresh"]}))[0] == 401
    await alice.arefresh_from_db()
    assert await opens(issue_access_token(alice))  # tokens made after the change work


async def test_saving_other_fields_cuts_nobody_off(client, alice):
    pair = await login(client)
    socket = await live_socket(pair["access"])
    alice.first_name = "Alicia"
    await alice.asave()
    assert await still_open(socket)
    assert await opens(pair["access"])


async def test_deactivation_closes_sockets_and_refuses_tokens(client, alice):
    pair = await login(client)
    socket = await live_socket(pair["access"])
    alice.is_active = False
    await alice.asave(update_fields=["is_active"])
    assert await closed_with_4001(socket)
    assert not await opens(pair["access"])
    assert (await post(client, "/api/token/refresh/", {"refresh": pair["refresh"]}))[0] == 401
    # Reactivated, the tokens of before stay dead: their families were revoked.
    alice.is_active = True
    await alice.asave(update_fields=["is_active"])
    assert not await opens(pair["access"])
    assert (await post(client, "/api/token/refresh/", {"refresh": pair["refresh"]}))[0] == 401


async def test_refresh_tokens_rotate_and_a_reused_one_revokes_its_family(client, alice):
    pair = await login(client)
    other_login = await login(client)
    status, rotated = await post(client, "/api/token/refresh/", {"refresh": pair["refresh"]})
    assert status == 200 and set(rotated) == {"access", "refresh"}
    assert rotated["refresh"] != pair["refresh"]
    socket = await live_socket(rotated["access"])
    other_socket = await live_socket(other_login["access"])

    # The used-up refresh token again: someone holds a copy. The whole family goes.
    assert (await post(client, "/api/token/refresh/", {"refresh": pair["refresh"]}))[0] == 401
    assert await closed_with_4001(socket)
    assert (await post(client, "/api/token/refresh/", {"refresh": rotated["refresh"]}))[0] == 401
    assert not await opens(rotated["access"])
    assert not await opens(pair["access"])
    # The other login is another family.
    assert await still_open(other_socket)
    assert await opens(other_login["access"])
    assert await TokenFamily.objects.filter(revoked_at__isnull=True).acount() == 1


async def test_logout_revokes_the_family_and_closes_its_sockets_only(client, alice):
    pair = await login(client)
    other_login = await login(client)
    socket = await live_socket(pair["access"])
    other_socket = await live_socket(other_login["access"])
    status, _ = await post(client, "/api/token/revoke/", {"refresh": pair["refresh"]})
    assert status == 204
    assert await closed_with_4001(socket)
    assert await still_open(other_socket)
    assert not await opens(pair["access"])
    assert (await post(client, "/api/token/refresh/", {"refresh": pair["refresh"]}))[0] == 401
    assert (await post(client, "/api/token/revoke/", {"refresh": pair["refresh"]}))[0] == 401
    assert (await post(client, "/api/token/revoke/", {"refresh": pair["access"]}))[0] == 401
    assert (await post(client, "/api/token/revoke/", {}))[0] == 400


async def test_a_deleted_user_is_cut_off(client, alice):
    socket = await live_socket(issue_access_token(alice))
    await alice.adelete()
    assert await closed_with_4001(socket)


async def test_the_close_travels_through_redis(client, alice, pubsub_layer):
    """What reaches every daemon: the close goes out as a layer group message, so a socket
    held by any process subscribed to the user's group is closed."""
    pair = await login(client)
    socket = await live_socket(pair["access"])
    assert (await post(client, "/api/token/revoke/", {"refresh": pair["refresh"]}))[0] == 204
    assert await closed_with_4001(socket)
