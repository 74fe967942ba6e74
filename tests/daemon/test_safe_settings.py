"""Settings that refuse to be unsafe: production keys, development settings beyond loopback,
exact WebSocket origins, HSTS and Django's deployment checks."""

import secrets

import pytest
from channels.testing import WebsocketCommunicator
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from twisted.python import usage

from chatserver.daemon.endpoints import is_loopback_endpoint
from chatserver.daemon.tap import refuse_exposed_development
from chatserver.settings import environment
from chatserver.settings.environment import DEVELOPMENT_SECRET_KEY, secret_key_problem
from tests.support.twistd import daemon_env, run_tool

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "not set"),
        (DEVELOPMENT_SECRET_KEY, "published development key"),
        ("Zq8-" * 7, "shorter than 32"),
        ("x" * 50, "fewer than 20 distinct characters"),
        ("changeme" * 6, "fewer than 20 distinct characters"),
        ("0123456789" * 4, "fewer than 20 distinct characters"),
    ],
)
def test_weak_secret_keys_are_refused_with_a_way_to_make_one(key, reason):
    problem = secret_key_problem(key)
    assert reason in problem
    assert "secrets.token_urlsafe(50)" in problem


def test_a_random_key_passes():
    assert secret_key_problem(secrets.token_urlsafe(50)) is None


def production_env(tmp_path, **extra):
    env = daemon_env(tmp_path)
    env.pop("DATABASE_URL", None)
    env.update(
        DJANGO_SETTINGS_MODULE="chatserver.settings.production",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="chat.example.com",
        REDIS_URL="redis://127.0.0.1:1/0",
    )
    env.pop("DEBUG", None)
    env.update(extra)
    return env


def test_production_daemon_refuses_the_development_key(tmp_path):
    env = production_env(tmp_path, SECRET_KEY=DEVELOPMENT_SECRET_KEY)
    result = run_tool("twistd", "-n", "chat", "--production", env=env)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "published development key" in output
    assert "Traceback" not in output


def test_production_settings_pass_djangos_deployment_checks(tmp_path):
    result = run_tool(
        "chatserver", "check", "--deploy", "--fail-level", "WARNING", env=production_env(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_hsts_comes_from_the_environment(tmp_path):
    script = (
        "from django.conf import settings as s; "
        "print(s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_SSL_REDIRECT)"
    )
    default = run_tool("chatserver", "shell", "-c", script, env=production_env(tmp_path))
    assert default.stdout.splitlines()[-1].split() == ["31536000", "True", "True"], default.stderr
    env = production_env(tmp_path, SECURE_HSTS_SECONDS="600", SECURE_HSTS_INCLUDE_SUBDOMAINS="0")
    chosen = run_tool("chatserver", "shell", "-c", script, env=env)
    assert chosen.stdout.splitlines()[-1].split() == ["600", "False", "True"], chosen.stderr


# -- development settings beyond loopback ------------------------------------------------


class DevelopmentSettings:
    DEVELOPMENT_SETTINGS = True


@pytest.mark.parametrize(
    ("endpoint", "loopback"),
    [
        ("unix:/run/daphne/daphne.sock:mode=660", True),
        ("tcp:8000:interface=127.0.0.1", True),
        ("tcp:8000:interface=127.5.0.1", True),
        ("tcp:8000:interface=\\:\\:1", True),
        ("tcp6:8000:interface=\\:\\:1", True),
        ("tcp:8000:interface=localhost", True),
        ("tcp:8000", False),
        ("tcp:8000:interface=0.0.0.0", False),
        ("tcp:8000:interface=\\:\\:", False),
        ("tcp:8000:interface=192.168.1.10", False),
        ("systemd:domain=INET:index=0", False),
    ],
)
def test_loopback_endpoints_are_told_apart(endpoint, loopback):
    assert is_loopback_endpoint(endpoint) is loopback


def test_development_settings_stay_on_loopback_unless_insisted():
    local = ["tcp:8000:interface=127.0.0.1", "unix:/tmp/chat.sock"]
    refuse_exposed_development(DevelopmentSettings, local, insisted=False)
    exposed = local + ["tcp:8001:interface=0.0.0.0"]
    with pytest.raises(usage.UsageError, match="i-know-this-is-development"):
        refuse_exposed_development(DevelopmentSettings, exposed, insisted=False)
    refuse_exposed_development(DevelopmentSettings, exposed, insisted=True)
    refuse_exposed_development(object(), exposed, insisted=False)  # production settings


def test_daemon_refuses_development_settings_on_every_interface(tmp_path):
    result = run_tool(
        "twistd", "-n", "chat", "--port", "8000", "--interface", "0.0.0.0",
        env=daemon_env(tmp_path),
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "refusing to serve the development settings on tcp:8000" in output
    assert "Traceback" not in output


# -- exact origins -----------------------------------------------------------------------


def test_allowed_origins_must_be_full_origins():
    assert environment.allowed_origins(["https://Chat.example.com/", "http://a.test:8080"]) == [
        "https://chat.example.com",
        "http://a.test:8080",
    ]
    for bad in ["chat.example.com", "https://.example.com", "https://x.test/path", "ftp://x.test",
                "https://x.test:port", "https://user@x.test"]:  # fmt: skip
        with pytest.raises(ImproperlyConfigured, match="is not an origin"):
            environment.allowed_origins([bad])


async def handshake(origin):
    """Whether the Origin check lets a handshake through (to the auth layer, which accepts and
    closes an anonymous socket with 4001)."""
    from chatserver.chat.auth.origins import origin_checked
    from chatserver.chat.routing import websocket_application

    communicator = WebsocketCommunicator(
        origin_checked(websocket_application), "/messaging/", headers=[(b"origin", origin)]
    )
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    return connected


@pytest.mark.django_db(transaction=True)
async def test_without_allowed_origins_only_the_host_is_compared():
    assert await handshake(b"http://localhost")
    assert await handshake(b"https://localhost:8443")  # scheme and port are not compared
    assert not await handshake(b"https://evil.example")


@pytest.mark.django_db(transaction=True)
async def test_allowed_origins_are_enforced_exactly():
    with override_settings(ALLOWED_ORIGINS=["https://localhost"]):
        assert await handshake(b"https://localhost")
        assert await handshake(b"https://localhost:443")
        assert not await handshake(b"http://localhost")
        assert not await handshake(b"https://localhost:8443")
        assert not await handshake(b"https://evil.example")
