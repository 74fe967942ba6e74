"""Child processes of a test or a bench run: spawn with a log, poll until ready, stop by PID."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port():
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Managed:
    """One child process logged to a file (``log_path``), stopped by its PID.

    ``new_session``: the child leads a session of its own, so ``stop`` reaches what it spawned
    and a Ctrl-C in the terminal does not; ``False`` keeps it in ours (it gets the Ctrl-C too).
    """

    def __init__(
        self, name, argv, *, env=None, cwd=None, log_path=None, user=None, new_session=True,
        pass_fds=(),
    ):  # fmt: skip
        self.name = name
        self.argv = list(argv)
        self.new_session = new_session
        self.log_path = Path(log_path) if log_path else None
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.popen = subprocess.Popen(
                self.argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=new_session,
                user=user,
                pass_fds=pass_fds,
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        self.pid = self.popen.pid

    def poll(self):
        return self.popen.poll()

    def alive(self):
        return self.popen.poll() is None

    def log(self):
        if not self.log_path or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines=20):
        return "\n".join(self.log().splitlines()[-lines:])

    def wait_ready(self, ready, timeout, log=None):
        """Return once ``ready()`` is true; if the process exits first or ``timeout`` passes
        (it is stopped then), raise RuntimeError with ``log()`` (default: its log file)."""
        if wait_until(ready, timeout, self):
            return
        exited = self.poll()
        self.stop()
        why = f"exited with {exited}" if exited is not None else f"was not ready in {timeout} s"
        raise RuntimeError(f"{self.name} {why}:\n{(log or self.log)()}")

    def stop(self, timeout=10.0):
        """SIGTERM (its process group when it leads one), then SIGKILL after ``timeout``."""
        if self.popen.poll() is not None:
            return self.popen.returncode
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                if self.new_session:
                    os.killpg(self.pid, sig)
                else:
                    self.popen.send_signal(sig)
            except ProcessLookupError:
                break
            try:
                return self.popen.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        return self.popen.poll()


def wait_until(ready, timeout, process=None):
    """Poll ``ready()`` every 50 ms: True once it is, False on timeout or once ``process``
    (anything with ``poll()``) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        if ready():
            return True
        time.sleep(0.05)
    return False


def unix_socket_accepts(path):
    """A ``ready`` check: something accepts connections on the Unix socket ``path``."""

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
    """A ``ready`` check: something accepts connections on ``host:port``."""

    def check():
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            return False

    return check


def wait_for_unix_socket(path, timeout, process=None):
    """Block until something accepts on ``path``; False on timeout or if ``process`` died."""
    return wait_until(unix_socket_accepts(path), timeout, process)
