"""A real daemon on the embedded defaults (as ``make run`` serves it) and Debian's chromium
driven by Playwright. Browser tests skip when chromium or Playwright is not installed; the
browser is never downloaded (``playwright install`` is not part of this project)."""

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import free_port
from tests.support.twistd import Daemon, daemon_env, manage, tcp_port_accepts

CHROMIUM = os.environ.get("CHATSERVER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Where screenshots go besides the test's tmp dir (gitignored): see the README.
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"


@dataclass
class WebDaemon:
    url: str  # http://127.0.0.1:PORT
    env: dict  # for `chatserver` commands on the daemon's database


@pytest.fixture(scope="session")
def web_daemon(tmp_path_factory):
    """``twistd -n chat --port N`` with collected static files, as ``make run`` serves."""
    state = tmp_path_factory.mktemp("web-daemon")
    env = daemon_env(state)
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    manage(env, "collectstatic", "--noinput", "-v", "0", timeout=120)
    port = free_port()
    daemon = Daemon(["--port", str(port)], env, state)
    daemon.start(ready=tcp_port_accepts(port), timeout=60)
    try:
        yield WebDaemon(f"http://127.0.0.1:{port}", env)
    finally:
        daemon.kill()


@pytest.fixture(scope="module")
def browser():
    """Chromium for one module: Playwright's sync API keeps an event loop running in this
    thread while it is open, which pytest-asyncio's tests after it could not share."""
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def artifacts(tmp_path):
    """Save a file under the test's tmp dir and var/test-artifacts/ (gitignored)."""

    def save(name, data):
        (tmp_path / name).write_bytes(data)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / name).write_bytes(data)
        return tmp_path / name

    return save
