"""Run the real daemon (``twistd -n chat``) as a subprocess for end-to-end tests."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


def daemon_env(state_dir, redis_url=None, **extra):
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.update(
        CHATSERVER_STATE_DIR=str(state_dir),
        DJANGO_SETTINGS_MODULE="chatserver.settings.development",
        PYTHONUNBUFFERED="1",
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update({key: str(value) for key, value in extra.items()})
    return env


def run_tool(name, *args, env=None, timeout=60, check=False):
    """Run one of the venv's commands (twistd, chatserver) from the repository root."""
    return subprocess.run(
        [str(BIN / name), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def manage(env, *args, timeout=60):
    """Run the ``chatserver`` management command with the daemon's environment."""
    return run_tool("chatserver", *args, env=env, timeout=timeout, check=True)


def create_users_with_tokens(env, *usernames):
    """Create users in the daemon's database; return {username: {"id": .., "token": ..}}."""
    script = (
        "import json, sys\n"
        "from django.contrib.auth import get_user_model\n"
        "from chatserver.chat.auth.tokens import issue_access_token\n"
        "tokens = {}\n"
        f"for name in {list(usernames)!r}:\n"
        "    user, _ = get_user_model().objects.get_or_create(username=name)\n"
        "    tokens[name] = {'id': user.pk, 'token': issue_access_token(user)}\n"
        "print('TOKENS=' + json.dumps(tokens))\n"
    )
    manage(env, "migrate", "--noinput", "-v", "0")
    out = manage(env, "shell", "-c", script).stdout
    line = next(line for line in out.splitlines() if line.startswith("TOKENS="))
    return json.loads(line[len("TOKENS=") :])


class Daemon:
    """``twistd -n chat ...`` with its log in a file; stopped by PID."""

    def __init__(self, args, env, workdir):
        self.args = list(args)
        self.env = env
        self.workdir = Path(workdir)
        self.log_path = self.workdir / "twistd.log"
        self.process = None
        self.terminating = False

    pass_fds = ()  # descriptors the daemon inherits (socket activation)

    def command(self):
        return [str(BIN / "twistd"), "-n", "--pidfile=", "-l", "-", "chat", *self.args]

    def start(self, ready=None, timeout=30):
        """Start and wait until ``ready()`` is true (e.g. the socket accepts connections)."""
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(),
            env=self.env,
            cwd=self.workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            pass_fds=self.pass_fds,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"twistd exited with {self.process.returncode}:\n{self.log()}")
            if ready is None or ready():
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"twistd did not become ready in {timeout}s:\n{self.log()}")

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal_term(self):
        """Send SIGTERM once, as systemd does (a second one would interrupt the shutdown)."""
        if not self.terminating and self.process.poll() is None:
            self.terminating = True
            self.process.send_signal(signal.SIGTERM)

    def terminate(self, timeout=30):
        """SIGTERM (unless already sent) and wait; returns the exit code."""
        self.signal_term()
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._log.close()

    def stop_cleanly(self, timeout=30):
        """SIGTERM, then check the daemon shut down in order.

        twistd re-raises the terminating signal after a clean shutdown so its exit status tells
        how it stopped (systemd counts SIGTERM as success), hence -SIGTERM, not 0.
        """
        code = self.terminate(timeout)
        log = self.log()
        assert code in (0, -signal.SIGTERM), f"exit {code}:\n{log}"
        assert "Server Shut Down." in log, log
        assert "Traceback" not in log, log
        return log

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if getattr(self, "_log", None):
            self._log.close()


def unix_socket_accepts(path):
    def check():
        if not os.path.exists(path):
            return False
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(str(path))
            except OSError:
                return False
            return True

    return check


def tcp_port_accepts(port, host="127.0.0.1"):
    def check():
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            return False

    return check
