"""A throwaway redis-server: no persistence, on a free loopback port or a Unix socket."""

import shutil
import socket
from pathlib import Path

from .processes import Managed, free_port


class RedisServer:
    """``start()`` it, ``stop()`` it by PID, ``start()`` again on the same address.

    ``unix_socket``: listen on ``<workdir>/redis.sock`` only (no TCP port), as the bench does;
    ``maxclients``: above Redis' default of 10000 when a run opens more connections.
    """

    def __init__(self, workdir, unix_socket=False, maxclients=None):
        self.workdir = Path(workdir)
        self.sock = str(self.workdir / "redis.sock") if unix_socket else None
        self.port = None if unix_socket else free_port()
        self.maxclients = maxclients
        self.managed = None
        self.process = None  # the subprocess.Popen, for tests that signal it themselves

    @property
    def url(self):
        if self.sock:
            return f"unix://{self.sock}"
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self, binary):
        if self.sock:
            listen = ["--port", "0", "--unixsocket", self.sock, "--unixsocketperm", "700"]
        else:
            listen = ["--port", str(self.port), "--bind", "127.0.0.1", "--protected-mode", "yes"]
        limits = ["--maxclients", str(self.maxclients)] if self.maxclients else []
        return [
            binary, *listen, *limits,
            "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
        ]  # fmt: skip

    def start(self, timeout=10):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make test`, it installs it.")
        self.managed = Managed(
            "redis", self.argv(binary), log_path=self.workdir / "redis.log", cwd=self.workdir
        )
        self.process = self.managed.popen
        self.managed.wait_ready(self.answers_ping, timeout)
        return self

    def connect(self, timeout=2):
        if self.sock:
            conn = socket.socket(socket.AF_UNIX)
            conn.settimeout(timeout)
            try:
                conn.connect(self.sock)
            except OSError:
                conn.close()
                raise
            return conn
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def command(self, line):
        """Send one inline command; returns the first bytes of the reply."""
        with self.connect() as conn:
            conn.sendall(line + b"\r\n")
            return conn.recv(16)

    def answers_ping(self):
        try:
            return self.command(b"PING").startswith(b"+PONG")
        except OSError:
            return False

    def flush(self):
        self.command(b"FLUSHALL")

    def stop(self):
        if self.managed is not None:
            self.managed.stop(timeout=5)
