"""systemd's notification protocol (``sd_notify(3)``), spoken directly.

Each message is one datagram of ``KEY=value`` lines sent to the Unix socket named by
NOTIFY_SOCKET (a leading ``@`` means Linux's abstract namespace). Without NOTIFY_SOCKET every
call does nothing, so the daemon behaves the same outside systemd. Sending never raises: a
supervisor that stopped listening must not take the daemon down with it.
"""

import errno
import os
import socket

from twisted.logger import Logger

log = Logger()


class Notifier:
    def __init__(self, environ=None):
        environ = os.environ if environ is None else environ
        path = environ.get("NOTIFY_SOCKET", "")
        if path.startswith("@"):
            path = "\0" + path[1:]
        self.address = path or None
        self._socket = None
        self._warned = False

    @property
    def enabled(self):
        return self.address is not None

    def send(self, **fields):
        """Send ``KEY=value`` lines, e.g. ``send(READY=1, STATUS="serving")``."""
        if not self.enabled:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.sendto(message, socket.MSG_DONTWAIT, self.address)
        except OSError as error:
            if error.errno != errno.EAGAIN and not self._warned:
                self._warned = True  # once: the watchdog would repeat it twice a WatchdogSec
                log.warn("cannot notify systemd at {address}: {error}", address=self.address,
                         error=error.strerror or error)  # fmt: skip
            return False
        return True

    def close(self):
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_interval(environ=None, pid=None):
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None when not asked for."""
    environ = os.environ if environ is None else environ
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    return int(usec) / 2 / 1_000_000
