"""Authentication: JWT endpoints, ?token= and session-cookie sockets, origin checking."""

import json
from datetime import timedelta

import jwt
import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.utils import timezone

from chatserver.asgi import application
from chatserver.chat.auth.tokens import (
    issue_access_token,
    issue_token_pair,
    user_id_from_token,
)
from chatserver.chat.protocol import CLOSE_UNAUTHENTICATED

from .conftest import ORIGIN

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user(username="alice", password="correct horse 9")


def post_json(client, path, body):
    return client.post(path, data=json.dumps(body), content_type="application/json")


def test_token_pair_for_good_credentials_only(client, alice):
    response = post_json(
        client, "/api/token/", {"username": "alice", "password": "correct horse 9"}
    )
    assert response.status_code == 200
    pair = response.json()
    assert user_id_from_token(pair["access"]) == alice.pk
    assert user_id_from_token(pair["refresh"], expected_type="refresh") == alice.pk

    assert (
        post_json(client, "/api/token/", {"username": "alice", "password": "nope"}).status_code
        == 401
    )
    assert post_json(client, "/api/token/", {"username": "alice"}).status_code == 400
    assert (
        client.post("/api/token/", data="[1]", content_type="application/json").status_code == 400
    )
    assert client.get("/api/token/").status_code == 405
    form = client.post("/api/token/", {"username": "alice", "password": "correct horse 9"})
    assert form.status_code == 200


def test_refresh_gives_a_new_access_token_and_refuses_access_tokens(client, alice):
    pair = issue_token_pair(alice)
    response = post_json(client, "/api/token/refresh/", {"refresh": pair["refresh"]})
    assert response.status_code == 200
    assert user_id_from_token(response.json()["access"]) == alice.pk
    wrong_type = post_json(client, "/api/token/refresh/", {"refresh": pair["access"]})
    assert wrong_type.status_code == 401
    alice.is_active = False
    alice.save()
    assert post_json(client, "/api/token/refresh/", {"refresh": pair["refresh"]}).status_code == 401


async def closes_with(path, headers=ORIGIN):
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    assert connected  # accepted first, so the client can read the close code
    output = await communicator.receive_output(timeout=2)
    await communicator.disconnect()
    return output


def expired_token(user_id):
    past = timezone.now() - timedelta(hours=1)
    claims = {"sub": str(user_id), "type": "access", "exp": int(past.timestamp())}
    return jwt.encode(claims, settings.SECRET_KEY, algorithm="HS256")


async def test_bad_expired_and_inactive_tokens_close_with_4001(alice):
    forged = jwt.encode(
        {"sub": str(alice.pk), "type": "access", "exp": 2**40},
        "a-different-key-of-at-least-32-bytes!",
    )
    for token in ("garbage", expired_token(alice.pk), forged):
        output = await closes_with(f"/messaging/?token={token}")
        assert output == {"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED}
    alice.is_active = False
    await alice.asave()
    output = await closes_with(f"/messaging/?token={issue_access_token(alice)}")
    assert output["code"] == CLOSE_UNAUTHENTICATED


async def test_no_credentials_close_with_4001():
    assert (await closes_with("/messaging/"))["code"] == CLOSE_UNAUTHENTICATED


def login_session(user):
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return store.session_key


async def test_session_cookie_authenticates_and_a_bad_token_still_wins(alice):
    from asgiref.sync import sync_to_async

    session_key = await sync_to_async(login_session)(alice)
    headers = ORIGIN + [(b"cookie", f"sessionid={session_key}".encode())]
    communicator = WebsocketCommunicator(application, "/messaging/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    frame = json.loads(await communicator.receive_from(timeout=2))
    assert frame["eventType"] == "chat.notifications"
    await communicator.disconnect()
    # A token that is present but bad never falls back to the cookie.
    output = await closes_with("/messaging/?token=garbage", headers=headers)
    assert output["code"] == CLOSE_UNAUTHENTICATED


async def test_foreign_origin_is_refused_at_the_handshake(alice):
    path = f"/messaging/?token={issue_access_token(alice)}"
    for headers in ([(b"origin", b"http://evil.example")], []):
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await communicator.connect()
        assert not connected


def test_a_batch_of_handshakes_is_checked_in_two_queries(django_user_model, alice):
    """Concurrent handshakes share one check (auth/websocket.token_users): each still gets its
    own answer, refused for a deactivated user, a revoked family, a changed password, a bad
    family id or an unknown user."""
    from django.contrib.auth.models import AnonymousUser
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from chatserver.chat.auth.tokens import decode
    from chatserver.chat.auth.websocket import token_users
    from chatserver.chat.models import TokenFamily

    bob = django_user_model.objects.create_user(username="bob", password="x")
    carol = django_user_model.objects.create_user(username="carol", password="x")
    dave = django_user_model.objects.create_user(username="dave", password="x")
    good = decode(issue_token_pair(alice)["access"])
    revoked = decode(issue_token_pair(bob)["access"])
    TokenFamily.objects.filter(pk=revoked["fid"]).update(revoked_at=timezone.now())
    stale = decode(issue_access_token(carol))
    carol.set_password("changed")
    carol.save()
    inactive = decode(issue_access_token(dave))
    dave.is_active = False
    dave.save()
    bad_family = dict(good, fid="not-a-uuid")
    unknown = dict(good, user_id=999_999)
    batch = [good, revoked, stale, inactive, bad_family, unknown, good]
    with CaptureQueriesContext(connection) as queries:
        answers = token_users(batch)
    assert len(queries) == 2
    assert [a.pk for a in answers] == [alice.pk, None, None, None, None, None, alice.pk]
    assert all(isinstance(a, AnonymousUser) for a in answers[1:6])
