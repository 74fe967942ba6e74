"""POST /api/signup/: accounts with Django's validators, tokens at once, off unless allowed,
and a per-address limit checked before any password is hashed."""

import json
import os
import secrets
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

from chatserver.chat.auth.tokens import decode

pytestmark = pytest.mark.django_db

GOOD_PASSWORD = "correct horse battery 42"


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


def signup(client, username, password=GOOD_PASSWORD, address="10.0.0.1"):
    return client.post(
        "/api/signup/",
        json.dumps({"username": username, "password": password}),
        content_type="application/json",
        REMOTE_ADDR=address,
    )


def test_signup_creates_the_user_and_logs_in(client):
    response = signup(client, "newcomer")
    assert response.status_code == 201
    user = get_user_model().objects.get(username="newcomer")
    assert user.check_password(GOOD_PASSWORD) and user.is_active and not user.is_staff
    assert int(decode(response.json()["access"])["sub"]) == user.pk
    # The tokens are a normal login: the refresh token rotates.
    refreshed = client.post("/api/token/refresh/", {"refresh": response.json()["refresh"]})
    assert refreshed.status_code == 200


def test_form_bodies_work_too(client):
    response = client.post("/api/signup/", {"username": "formed", "password": GOOD_PASSWORD})
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("username", "password", "field"),
    [
        ("shorty", "abc", "password"),  # too short
        ("common", "password123", "password"),  # too common
        ("digits", "83749203847", "password"),  # entirely numeric
        ("similar", "similar1", "password"),  # like the username
        ("bad name!", GOOD_PASSWORD, "username"),
        ("", GOOD_PASSWORD, "username"),
        ("x" * 151, GOOD_PASSWORD, "username"),
    ],
)
def test_validators_refuse_with_reasons(client, username, password, field):
    response = signup(client, username, password)
    assert response.status_code == 400
    assert response.json()["errors"][field]
    assert not get_user_model().objects.filter(username=username).exists()


def test_taken_usernames_are_refused_whatever_their_case(client, django_user_model):
    django_user_model.objects.create_user(username="Alice", password=None)
    response = signup(client, "alice")
    assert response.status_code == 400
    assert response.json()["errors"]["username"] == ["That username is taken."]


@pytest.mark.parametrize("body", ["[]", "nope", json.dumps({"username": 1, "password": "x"})])
def test_malformed_bodies_are_400(client, body):
    response = client.post("/api/signup/", body, content_type="application/json")
    assert response.status_code == 400
    assert "detail" in response.json()


def test_signup_is_404_when_not_allowed(client, settings):
    settings.ALLOW_SIGNUP = False
    assert signup(client, "newcomer").status_code == 404
    assert not get_user_model().objects.filter(username="newcomer").exists()


def test_only_post(client):
    assert client.get("/api/signup/").status_code == 405


def test_an_address_is_limited_before_anything_is_hashed(client, settings):
    settings.SIGNUP_LIMITS = {"per_address": 3, "window": 600}
    assert signup(client, "first").status_code == 201
    assert signup(client, "second", "abc").status_code == 400  # failures count too
    assert signup(client, "third").status_code == 201
    refused = signup(client, "fourth")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 600
    assert not get_user_model().objects.filter(username="fourth").exists()
    # Another address is not affected.
    assert signup(client, "fifth", address="10.0.0.2").status_code == 201


@pytest.mark.parametrize(
    ("module", "flag", "expected"),
    [
        ("production", None, "False"),
        ("production", "1", "True"),
        ("development", None, "True"),
        ("development", "0", "False"),
    ],
)
def test_signup_is_open_in_development_and_closed_in_production_by_default(
    module, flag, expected, tmp_path
):
    env = {
        **os.environ,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "chat.example.org",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "CHATSERVER_STATE_DIR": str(tmp_path),
    }
    env.pop("DEBUG", None)
    env.pop("CHATSERVER_ALLOW_SIGNUP", None)
    if flag is not None:
        env["CHATSERVER_ALLOW_SIGNUP"] = flag
    code = f"from chatserver.settings import {module} as s; print(s.ALLOW_SIGNUP)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == expected
