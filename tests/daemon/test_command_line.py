"""The command line as users meet it: twistd's plugin list, help, reactors, bad settings."""

import subprocess
import time
import zipfile

import pytest

from chatserver.daemon.options import Options
from tests.support.processes import free_port
from tests.support.twistd import BIN, REPO, daemon_env, run_tool, tcp_port_accepts

from .http_probe import get

pytestmark = pytest.mark.timeout(120)


def twistd(*args, env=None, timeout=60):
    return run_tool("twistd", *args, env=env, timeout=timeout)


def test_twistd_lists_chat_and_documents_every_option():
    assert "chat" in twistd("--help").stdout
    help_text = twistd("chat", "--help").stdout
    options = Options()
    long_names = [flag[0] for flag in options.optFlags] + [p[0] for p in options.optParameters]
    for name in long_names + ["endpoint"]:
        assert f"--{name}" in help_text, name


def test_other_reactors_are_refused_with_one_usage_line(tmp_path):
    result = twistd("-r", "epoll", "chat", env=daemon_env(tmp_path))
    assert result.returncode != 0
    assert "needs Twisted's asyncio reactor" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout


def test_explicit_asyncio_reactor_via_r_flag(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "twistd"), "-r", "asyncio", "-n", "--pidfile=", "-l", "-",
         "chat", "--port", str(port)],
        env=daemon_env(tmp_path), cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        ready = tcp_port_accepts(port)
        for _ in range(300):
            if ready() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert ready(), proc.stdout.read() if proc.poll() is not None else "not listening"
        # The port is bound before the reactor runs (and installs its SIGTERM handler): an
        # answered request says it runs.
        assert get(("127.0.0.1", port), "/healthz")[0] == 200
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert "AsyncioSelectorReactor" in output and "Server Shut Down." in output


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "SECRET_KEY is not set"),
        ({"SECRET_KEY": "x" * 40, "REDIS_URL": "redis://127.0.0.1:1"}, "ALLOWED_HOSTS is empty"),
        (
            {"SECRET_KEY": "x" * 40, "ALLOWED_HOSTS": "*", "REDIS_URL": "redis://127.0.0.1:1"},
            "must not contain '*'",
        ),
        ({"SECRET_KEY": "x" * 40, "ALLOWED_HOSTS": "chat.example.com"}, "REDIS_URL is not set"),
    ],
)
def test_production_misconfiguration_fails_at_start(tmp_path, env, message):
    base = daemon_env(tmp_path)
    for name in ("SECRET_KEY", "ALLOWED_HOSTS", "REDIS_URL", "DATABASE_URL", "DEBUG"):
        base.pop(name, None)
    base.update(env)
    result = twistd("-n", "chat", "--production", env=base)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert message in output, output
    assert "Traceback" not in output


def test_debug_off_holds_development_settings_to_production_rules(tmp_path):
    env = daemon_env(tmp_path, DEBUG="0")
    env.pop("SECRET_KEY", None)
    result = twistd("-n", "chat", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stdout + result.stderr


def test_wheel_ships_the_plugin_but_not_a_twisted_package(tmp_path):
    subprocess.run(
        [str(BIN / "pip"), "wheel", "-q", "--no-deps", "-w", str(tmp_path),
         str(REPO)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("chatserver-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "twisted/plugins/chatserver_plugin.py" in names
    assert "twisted/__init__.py" not in names
    assert "twisted/plugins/__init__.py" not in names
    assert "chatserver/daemon/tap.py" in names
    assert any(name.startswith("chatserver/chat/migrations/0001") for name in names)
