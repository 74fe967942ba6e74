"""The SSH manhole in a real daemon: key login works; wrong keys and passwords are refused."""

import asyncio

import asyncssh
import pytest

from tests.support.processes import free_port
from tests.support.twistd import Daemon, daemon_env, tcp_port_accepts

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def operator_key():
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture
def manhole_daemon(tmp_path, operator_key):
    keys = tmp_path / "authorized_keys"
    keys.write_text(operator_key.export_public_key().decode())
    state = tmp_path / "state"
    state.mkdir()
    http_port, ssh_port = free_port(), free_port()
    daemon = Daemon(
        [
            "--port", str(http_port),
            "--manhole", f"tcp:{ssh_port}:interface=127.0.0.1",
            "--manhole-keys", str(keys),
        ],
        daemon_env(state),
        tmp_path,
    ).start(tcp_port_accepts(ssh_port))  # fmt: skip
    yield daemon, ssh_port, state
    daemon.kill()


def connect(port, **kwargs):
    return asyncssh.connect(
        "127.0.0.1", port, username="operator", known_hosts=None, agent_path=None, **kwargs
    )


async def read_until(process, marker, timeout=15):
    seen = ""
    while marker not in seen:
        seen += await asyncio.wait_for(process.stdout.read(4096), timeout)
    return seen


async def test_key_login_gets_a_python_shell_with_operator_helpers(manhole_daemon, operator_key):
    daemon, port, state = manhole_daemon
    host_key = state / "manhole_host_key"
    assert host_key.exists() and (host_key.stat().st_mode & 0o077) == 0
    async with connect(port, client_keys=[operator_key]) as conn:
        process = await conn.create_process(term_type="xterm", term_size=(200, 40))
        await read_until(process, ">>> ")
        process.stdin.write("6 * 7\r")
        await read_until(process, "42")
        process.stdin.write("stats()\r")
        output = await read_until(process, "websockets_here")
        assert "open_sessions" in output
        process.stdin.write("sweep()\r")
        await read_until(process, "called back")
        process.stdin.write_eof()
        process.close()
    daemon.stop_cleanly()


async def test_unknown_key_is_refused(manhole_daemon):
    _, port, _ = manhole_daemon
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    with pytest.raises(asyncssh.PermissionDenied):
        async with connect(port, client_keys=[stranger]):
            pass


async def test_passwords_are_never_accepted(manhole_daemon):
    _, port, _ = manhole_daemon
    with pytest.raises(asyncssh.PermissionDenied):
        async with connect(port, client_keys=None, password="operator"):
            pass
