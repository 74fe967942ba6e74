"""Daphne's record of connections and their application instances, kept by event, not by sweep.

Daphne's server keeps an entry per connection and walks every entry once a second to drop those
whose connection closed and whose application finished (``application_checker``). At 10,000
sockets that walk is a few percent of a core at rest, and 7% of the samples in a reconnect
storm, where the dropped connections and their successors are all in the record. Here an entry
goes when the later of the two happens; the once-a-second check is left only what needs a
clock: applications still running ``application_close_timeout`` seconds after their connection
closed, which it cancels as Daphne does.
"""

import asyncio
import logging
import time
from functools import partial

from twisted.internet import reactor

logger = logging.getLogger("daphne.server")  # where Daphne reports the same events


class ReapedApplications:
    """For a ``daphne.server.Server`` subclass: ``start_record`` before it serves, and ``track``
    each application instance ``create_application`` starts."""

    def start_record(self):
        self.connections = {}  # protocol -> {"connected", "disconnected"?, "application_instance"?}
        self._closing = set()  # connections closed while their application still runs

    def track(self, protocol, instance):
        self.connections[protocol]["application_instance"] = instance
        instance.add_done_callback(partial(self._application_done, protocol))

    def _application_done(self, protocol, instance):
        details = self.connections.get(protocol)
        if details is None or details.get("application_instance") is not instance:
            return
        del details["application_instance"]
        self._closing.discard(protocol)
        if "disconnected" in details:
            del self.connections[protocol]
        self._report_failure(protocol, instance, disconnected="disconnected" in details)

    def protocol_disconnected(self, protocol):
        details = self.connections.get(protocol)
        if details is None:  # a second report (a reject, then the close): gone already
            return
        details.setdefault("disconnected", time.time())
        if "application_instance" in details:
            self._closing.add(protocol)
        else:
            del self.connections[protocol]

    def application_checker(self):
        """Cancel applications still running ``application_close_timeout`` seconds after their
        connection closed; every second, as Daphne's check."""
        now = time.time()
        for protocol in list(self._closing):
            details = self.connections[protocol]
            if now - details["disconnected"] > self.application_close_timeout:
                instance = details["application_instance"]
                logger.warning(
                    "Application instance %r for connection %s took too long to shut down and "
                    "was killed.",
                    instance,
                    repr(protocol),
                )
                instance.cancel()  # its done callback drops the entry
        reactor.callLater(1, self.application_checker)

    def _report_failure(self, protocol, instance, disconnected):
        """What Daphne's check does with a finished application's exception."""
        if instance.cancelled():
            return
        exception = instance.exception()
        if exception is None or isinstance(exception, asyncio.CancelledError):
            return
        if isinstance(exception, KeyboardInterrupt):  # asking the server to exit (tests)
            self.stop()
            return
        logger.error("Exception inside application: %s", exception, exc_info=exception)
        if not disconnected:
            protocol.handle_exception(exception)
