"""A stand-in for systemd's notification socket: the tests bind it and read what the daemon says."""

import socket
import time


class NotifySocket:
    """A SOCK_DGRAM Unix socket to pass as NOTIFY_SOCKET; every datagram is kept in order."""

    def __init__(self, path):
        self.path = str(path)
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(self.path)
        self.messages = []  # one dict per datagram: {"READY": "1", "STATUS": "..."}

    def wait_for(self, predicate, timeout=60, on_each=None):
        """Read datagrams until one satisfies ``predicate``; return it (AssertionError if not)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.socket.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.socket.recv(4096)
            except TimeoutError:
                break
            message = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.messages.append(message)
            if on_each is not None:
                on_each(message)
            if predicate(message):
                return message
        raise AssertionError(f"no such notification within {timeout}s; got {self.messages}")

    def close(self):
        self.socket.close()
