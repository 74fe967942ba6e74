"""The web client's heartbeats keep its socket open past the server's inactivity threshold:
with a 4 s threshold and the sweeper running every second, a page left idle for 12 s is still
on its first connection (one session row, still open)."""

import json
import secrets

import pytest

from tests.support.processes import free_port
from tests.support.twistd import Daemon, daemon_env, manage, tcp_port_accepts

from .chat_page import sign_up

pytestmark = pytest.mark.timeout(300)

THRESHOLD = 4
IDLE_MS = 3 * THRESHOLD * 1000


def sessions_of(env, username):
    script = (
        "import json\n"
        "from chatserver.chat.models import Session\n"
        f"rows = Session.objects.filter(user__username={username!r})\n"
        "print('SESSIONS=' + json.dumps([r.close_code for r in rows]))\n"
    )
    out = manage(env, "shell", "-c", script).stdout
    line = next(line for line in out.splitlines() if line.startswith("SESSIONS="))
    return json.loads(line[len("SESSIONS=") :])


def test_an_idle_page_keeps_its_socket(browser, tmp_path):
    env = daemon_env(tmp_path, CHATSERVER_INACTIVITY_THRESHOLD=THRESHOLD)
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    port = free_port()
    daemon = Daemon(["--port", str(port), "--heartbeat-interval", "1"], env, tmp_path)
    daemon.start(ready=tcp_port_accepts(port), timeout=60)
    try:
        page = browser.new_context().new_page()
        name = f"idle{secrets.token_hex(3)}"
        sign_up(page, f"http://127.0.0.1:{port}", name)
        page.wait_for_timeout(IDLE_MS)  # nothing to await: the point is that nothing happens
        assert sessions_of(env, name) == [None]  # one connection, never closed
    finally:
        daemon.kill()
