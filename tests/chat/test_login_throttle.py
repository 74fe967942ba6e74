"""Password guessing is throttled per username and per address, for the token endpoint and the
admin's login alike, before any password is hashed."""

import json

import pytest
from django.contrib.auth.hashers import check_password
from django.core.cache import cache

from chatserver.chat.limits import login_throttle

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "correct horse 9"


@pytest.fixture(autouse=True, params=["process", "redis"])
def fresh_cache(request, settings):
    """Each test on the in-process cache and on Redis, where every daemon shares the counts."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    if request.param == "redis":
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": request.getfixturevalue("redis_url"),
            }
        }
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user(username="alice", password=PASSWORD)


def token(client, username, password, address="10.0.0.1"):
    return client.post(
        "/api/token/",
        data=json.dumps({"username": username, "password": password}),
        content_type="application/json",
        REMOTE_ADDR=address,
    )


@pytest.fixture
def hashes(monkeypatch):
    """Counts password checks, so a test can tell a refusal came before any hashing."""
    calls = []

    def counting(*args, **kwargs):
        calls.append(args)
        return check_password(*args, **kwargs)

    monkeypatch.setattr("django.contrib.auth.base_user.check_password", counting)
    return calls


def test_five_failures_lock_the_username_without_hashing(client, alice, hashes):
    for _ in range(5):
        assert token(client, "alice", "wrong").status_code == 401
    assert len(hashes) == 5
    refused = token(client, "Alice", PASSWORD, address="10.9.9.9")  # any case, any address
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 15 * 60
    assert "Too many failed logins" in refused.json()["detail"]
    assert len(hashes) == 5  # refused before the password was looked at
    assert token(client, "bob", "whatever").status_code == 401  # other users are unaffected


def test_one_address_guessing_many_usernames_is_locked_out(client, alice, hashes):
    for n in range(20):
        assert token(client, f"user{n}", "guess", address="10.6.6.6").status_code == 401
    assert token(client, "alice", PASSWORD, address="10.6.6.6").status_code == 429
    assert token(client, "alice", PASSWORD, address="10.0.0.2").status_code == 200


def test_a_success_forgets_the_usernames_failures(client, alice):
    for _ in range(4):
        token(client, "alice", "wrong")
    assert token(client, "alice", PASSWORD).status_code == 200
    for _ in range(4):
        assert token(client, "alice", "wrong").status_code == 401


def test_the_window_ends(client, alice):
    for _ in range(5):
        token(client, "alice", "wrong")
    assert login_throttle.retry_after("alice", "") is not None
    later = login_throttle.retry_after("alice", "", now=__import__("time").time() + 15 * 60 + 1)
    assert later is None


def test_the_admin_login_is_throttled_too(client, alice, hashes):
    alice.is_staff = True
    alice.save()
    for _ in range(5):
        response = client.post(
            "/admin/login/", {"username": "alice", "password": "wrong"}, REMOTE_ADDR="10.1.1.1"
        )
        assert response.status_code == 200  # the form again, with an error
    checked = len(hashes)
    refused = client.post(
        "/admin/login/", {"username": "alice", "password": PASSWORD}, REMOTE_ADDR="10.1.1.1"
    )
    assert refused.status_code == 429 and refused["Retry-After"]
    assert len(hashes) == checked
    # ... and the token endpoint shares the count.
    assert token(client, "alice", PASSWORD).status_code == 429
