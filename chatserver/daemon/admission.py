"""Admission control: stop accepting while too many requests wait for their answer.

Twisted accepts every connection the listen backlog holds. After a restart ten thousand
clients reconnect at once; accepted without limit, their handshakes queue inside the process,
each one times out (Autobahn's opening-handshake timeout) after the daemon has already spent
its share of the core on it, its client retries, and almost nothing completes. Instead, while
``limit`` connections have sent a whole request and not had its answer (a WebSocket opened, an
HTTP response finished, or the connection gone), the listening ports stop reading; the kernel
keeps the rest in the backlog, where waiting costs nothing, and clients past the backlog are
told at once (EAGAIN on a Unix socket, a SYN that TCP retries) instead of after a wasted
handshake. Reading resumes once the count is back to three quarters of the limit.

The limit is soft: Twisted accepts in batches, and a batch that starts below the limit runs to
its end. ``numberAccepts`` (the batch size) is capped at the room left so that overshoot stays
small.
"""

from . import metrics

# Enough handshakes to keep the core and the database batches busy, few enough that the last
# one admitted is answered well within Autobahn's 5 s opening-handshake timeout.
DEFAULT_MAX_HANDSHAKES = 128
RESUME_FRACTION = 0.75


class HandshakeAdmission:
    """Count the requests awaiting their answer; pause the ports at ``limit``."""

    def __init__(self, limit):
        self.limit = limit
        self.resume_at = max(0, int(limit * RESUME_FRACTION))
        self.pending = set()  # the transports of connections whose request is not answered
        self.ports = []
        self.paused = False
        self.pauses = 0

    @property
    def in_flight(self):
        return len(self.pending)

    def add_port(self, port):
        self.ports.append(port)
        if self.paused:
            port.stopReading()

    def remove_port(self, port):
        """Forget a port before it stops listening (a stopped port must not read again)."""
        if port in self.ports:
            self.ports.remove(port)

    def admit(self, transport):
        """A connection's request is in; it counts until ``answered`` is called for it."""
        self.pending.add(transport)
        if not self.paused and len(self.pending) >= self.limit:
            self._pause()
        self._size_batches()

    def answered(self, transport):
        """The connection's request was answered, or it is gone; more than once is harmless."""
        pending = self.pending
        if transport not in pending:
            return
        pending.discard(transport)
        if self.paused and len(pending) <= self.resume_at:
            self._resume()

    def _pause(self):
        self.paused = True
        self.pauses += 1
        metrics.accept_pauses.inc()
        for port in self.ports:
            port.stopReading()

    def _resume(self):
        self.paused = False
        self._size_batches()
        for port in self.ports:
            if port.connected:
                port.startReading()

    def _size_batches(self):
        room = max(1, self.limit - len(self.pending))
        for port in self.ports:
            if getattr(port, "numberAccepts", 0) > room:
                port.numberAccepts = room
