"""Run the real daemon (``twistd -n chat``) and the ``chatserver`` command as subprocesses."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from .processes import Managed, tcp_port_accepts, unix_socket_accepts

__all__ = [  # the readiness checks Daemon.start takes, importable from here too
    "Daemon", "create_users_with_tokens", "daemon_env", "manage", "run_tool",
    "tcp_port_accepts", "unix_socket_accepts",
]  # fmt: skip

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
        self.managed = Managed(
            "twistd",
            self.command(),
            env=self.env,
            cwd=self.workdir,
            log_path=self.log_path,
            new_session=False,  # a Ctrl-C of the test run reaches the daemon too
            pass_fds=self.pass_fds,
        )
        self.process = self.managed.popen
        self.managed.wait_ready(ready or (lambda: True), timeout)
        return self

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
        return self.process.wait(timeout=timeout)

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
