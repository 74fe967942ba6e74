"""When the server ends a login (here: the password changed), the web client cannot refresh
its tokens and shows the login form; logging in with the new password brings the chat back.

The daemon runs on Redis here: the password changes in another process (``chatserver shell``),
and the revocation reaches the daemon's sockets through the channel layer."""

import secrets

import pytest

from tests.support.processes import free_port
from tests.support.twistd import Daemon, daemon_env, manage, tcp_port_accepts

from .chat_page import expect, send, sign_up
from .conftest import WebDaemon

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def redis_daemon(tmp_path, redis_url):
    """The daemon on Redis (channel layer and cache); static files served from source."""
    env = daemon_env(tmp_path, redis_url)
    env.pop("DATABASE_URL", None)
    port = free_port()
    daemon = Daemon(["--port", str(port)], env, tmp_path)
    daemon.start(ready=tcp_port_accepts(port), timeout=60)
    try:
        yield WebDaemon(f"http://127.0.0.1:{port}", env)
    finally:
        daemon.kill()


def test_a_revoked_login_returns_to_the_login_form(browser, redis_daemon):
    web_daemon = redis_daemon
    see = expect()
    name = f"eve{secrets.token_hex(3)}"
    page = browser.new_context().new_page()
    sign_up(page, web_daemon.url, name)
    page.get_by_role("button", name="New chat").click()
    page.get_by_label("Room name").fill("Diary")
    page.get_by_role("button", name="Create room").click()
    send(page, "before")

    new_password = "Another-Secret-" + secrets.token_hex(4)
    script = (
        "from django.contrib.auth import get_user_model\n"
        f"user = get_user_model().objects.get(username={name!r})\n"
        f"user.set_password({new_password!r})\n"
        "user.save()\n"
    )
    manage(web_daemon.env, "shell", "-c", script)
    see(page.get_by_role("button", name="Log in")).to_be_visible()
    see(page.locator("#login-error")).not_to_be_empty()

    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(new_password)
    page.get_by_label("Password").press("Enter")  # the keyboard is enough
    page.locator("#rooms button", has_text="Diary").click()
    see(page.locator("#messages article .content")).to_have_text(["before"])
