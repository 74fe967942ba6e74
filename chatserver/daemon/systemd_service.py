"""Tell systemd (``Type=notify``) how the daemon is doing, through systemd_notify.py.

* ``READY=1`` once every listener is bound and the readiness probe passes (the same probe as
  ``GET /readyz``), retried every ``retry_interval`` seconds with a STATUS saying what is missing;
* ``STATUS=serving N WebSockets in M rooms``, refreshed every ``status_interval`` seconds;
* ``WATCHDOG=1`` every WATCHDOG_USEC/2 from a LoopingCall on the reactor, so systemd restarts a
  daemon whose event loop is wedged (``WatchdogSec=``);
* ``STOPPING=1`` when the shutdown starts. From then on ``/readyz`` answers 503 (draining) even
  without systemd; this service is started after Daphne's, so it is stopped before it.
"""

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from chatserver.chat.operations import readiness

from .aio import as_deferred
from .socket_activation import inherited_unix_sockets
from .systemd_notify import Notifier, watchdog_interval

log = Logger()


def local_room_count():
    """Rooms this process holds sockets for: room groups with a local member."""
    from chatserver.chat.delivery.fanout import room_group
    from chatserver.chat.delivery.localgroups import _registry

    prefix = room_group("")
    return len(
        {
            group
            for groups in list(_registry.values())
            for group, members in list(groups.members.items())
            if members and group.startswith(prefix)
        }
    )


def plural(count, noun):
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class SystemdNotifyService(service.Service):
    def __init__(
        self,
        reactor,
        listeners,
        connection_count,
        *,
        notifier=None,
        environ=None,
        status_interval=10.0,
        retry_interval=1.0,
    ):
        self.reactor = reactor
        self.listeners = list(listeners)
        self.connection_count = connection_count
        self.notifier = notifier or Notifier(environ)
        self.watchdog_interval = watchdog_interval(environ)
        self.status_interval = status_interval
        self.retry_interval = retry_interval
        self.ready = False
        self._status_loop = None

    def load(self):
        """e.g. "12 WebSockets in 5 rooms"."""
        sockets = plural(self.connection_count(), "WebSocket")
        return f"{sockets} in {plural(local_room_count(), 'room')}"

    def status_text(self):
        return f"serving {self.load()}"

    def startService(self):
        super().startService()
        if not self.notifier.enabled:
            return
        if self.watchdog_interval:
            # Never stopped: it pings through the drain too, and ends with the reactor.
            self._watchdog = self._loop(
                lambda: self.notifier.send(WATCHDOG=1), self.watchdog_interval, now=True
            )
        self._becoming_ready = self._become_ready()
        self._becoming_ready.addErrback(lambda f: log.failure("readiness notification", f))

    def _loop(self, function, interval, now):
        loop = task.LoopingCall(function)
        loop.clock = self.reactor
        loop.start(interval, now=now).addErrback(lambda f: log.failure("{f}", f, f=function))
        return loop

    @defer.inlineCallbacks
    def _become_ready(self):
        self.notifier.send(STATUS="starting: binding listeners")
        yield defer.gatherResults([listener.when_listening() for listener in self.listeners])
        unused = sorted(inherited_unix_sockets())
        if unused:
            log.warn("systemd passed {paths} but no --socket names them", paths=", ".join(unused))
        while self.running:
            results = yield as_deferred(readiness.probe())
            failed = readiness.failed(results)
            if not failed:
                break
            waiting = "; ".join(f"{name}: {results[name]}" for name in failed)
            self.notifier.send(STATUS=f"waiting for {waiting}")
            yield task.deferLater(self.reactor, self.retry_interval, lambda: None)
        if not self.running:
            return
        self.ready = True
        self.notifier.send(READY=1, STATUS=self.status_text())
        log.info("ready: told systemd READY=1")
        self._status_loop = self._loop(self._refresh_status, self.status_interval, now=False)

    def _refresh_status(self):
        self.notifier.send(STATUS=self.status_text())

    def stopService(self):
        super().stopService()
        readiness.begin_draining()
        if self._status_loop is not None and self._status_loop.running:
            self._status_loop.stop()
        if self.notifier.enabled:
            self.notifier.send(STOPPING=1, STATUS=f"stopping: draining {self.load()}")
