"""A daemon that cannot listen on every address it was given exits non-zero and says why."""

import socket

import pytest

from tests.support.processes import free_port
from tests.support.twistd import daemon_env, run_tool

pytestmark = pytest.mark.timeout(120)


def run_daemon(tmp_path, *chat_args):
    """twistd in the foreground; returns (exit status, log). The timeout is the 'promptly'."""
    result = run_tool(
        "twistd", "-n", "--pidfile=", "-l", "-", "chat", *chat_args,
        env=daemon_env(tmp_path / "state"), timeout=60,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


def assert_refused(code, log, reason):
    assert code == 1, f"exit {code}:\n{log}"
    (line,) = [line for line in log.splitlines() if "#critical]" in line]
    assert "cannot listen on" in line and reason in line, log
    assert "Traceback" not in log, log
    assert "Server Shut Down." in log  # stopped through twistd's shutdown, not killed


def test_missing_directory(tmp_path):
    code, log = run_daemon(tmp_path, "--socket", str(tmp_path / "no" / "such" / "chat.sock"))
    assert_refused(code, log, f"directory {tmp_path / 'no' / 'such'} does not exist")


def test_path_that_is_a_regular_file_is_refused_and_kept(tmp_path):
    path = tmp_path / "chat.sock"
    path.write_text("not a socket")
    (tmp_path / "chat.sock.lock").symlink_to("999999")  # a stale lock: Twisted would clean up
    code, log = run_daemon(tmp_path, "--socket", str(path))
    assert_refused(code, log, f"{path} exists and is not a socket")
    assert path.read_text() == "not a socket"


def test_busy_tcp_port_after_a_good_unix_socket(tmp_path):
    sock = tmp_path / "chat.sock"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, log = run_daemon(tmp_path, "--socket", str(sock), "--port", str(port))
    assert_refused(code, log, "Address already in use")
    assert f"listening on unix:{sock}" in log
    assert not sock.exists()  # the listener that did bind was released on the way out


def test_extra_endpoint_on_a_busy_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        code, log = run_daemon(
            tmp_path, "--port", str(free_port()), "--endpoint", f"tcp:{taken}:interface=127.0.0.1"
        )
    assert_refused(code, log, "Address already in use")
