"""Housekeeping that runs inside the daemon on a timer: the heartbeat sweeper and the reaper.

Each job is a :class:`PeriodicJob`: a service around a LoopingCall on an injected clock (tests pass
``twisted.internet.task.Clock``). Runs never overlap, a failing run is logged and the next tick
still happens, and the ORM work happens in the chat application's async helpers, off the reactor
thread.
"""

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from . import metrics
from .aio import as_deferred

log = Logger()


class PeriodicJob(service.Service):
    """Run ``job()`` (sync, coroutine or Deferred) every ``interval`` seconds.

    A run that fails with one of ``outages`` (the database is unreachable) is logged as one
    warning line without a traceback: nothing is wrong with the job, and the next run retries.
    """

    def __init__(self, name, job, interval, clock, outages=()):
        self.name = name
        self.outages = tuple(outages)
        self.job = job
        self.interval = interval
        self.clock = clock
        self.runs = 0
        self.failures = 0
        self.last_result = None
        self._loop = None
        self._running = None  # Deferred of the run in progress, if any

    def startService(self):
        super().startService()
        self._loop = task.LoopingCall(self._tick)
        self._loop.clock = self.clock
        # The first run waits one interval: at start-up nothing can be stale yet.
        self._loop.start(self.interval, now=False)

    def stopService(self):
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        # Let a run in progress finish so it does not die with the database connection.
        return self._running if self._running is not None else defer.succeed(None)

    def _tick(self):
        if self._running is not None:
            log.warn("{job}: previous run still in progress, skipping this tick", job=self.name)
            return None
        self.run_now()
        # Never hand the run's Deferred to LoopingCall: it would wait on it and stop the loop
        # for good on a failure.
        return None

    def run_now(self):
        """Run the job once now (the manhole uses this); returns a Deferred of its result."""
        if self._running is not None:
            return self._running
        try:
            running = as_deferred(self.job())
        except Exception:
            running = defer.fail()
        running.addCallbacks(self._succeeded, self._failed)
        if running.called:
            return running
        self._running = running
        running.addBoth(self._finished)
        return running

    def _finished(self, result):
        self._running = None
        return result

    def _succeeded(self, result):
        self.runs += 1
        self.last_result = result
        metrics.job_succeeded(self.name, result)
        if result:
            log.info("{job}: {result}", job=self.name, result=result)
        return result

    def _failed(self, failure):
        self.runs += 1
        self.failures += 1
        metrics.job_failed(self.name)
        if self.outages and failure.check(*self.outages):
            log.warn(
                "{job}: database unavailable ({error}); the next run is still scheduled",
                job=self.name,
                error=failure.value,
            )
            return None
        log.failure("{job} failed; the next run is still scheduled", failure, job=self.name)
        return None


def heartbeat_sweeper(interval, clock, threshold):
    """Close sockets whose last heartbeat is older than ``threshold()`` seconds (close 4408),
    then publish their users' presence: a daemon that died (SIGKILL) never said they left."""
    from django.utils import timezone

    from chatserver.chat.delivery.presence import sessions_swept
    from chatserver.chat.reconnect import LOST
    from chatserver.chat.sessions import expire_silent_sessions

    async def sweep():
        now = timezone.now()  # the closed_at of this run's sessions: how presence finds them
        expired = await expire_silent_sessions(threshold(), now=now)
        if expired:
            await sessions_swept(now)
        return expired

    return PeriodicJob("heartbeat-sweeper", sweep, interval, clock, outages=LOST)


def session_reaper(interval, clock, retention_seconds):
    """Delete session rows whose last heartbeat is older than the retention."""
    from chatserver.chat.reconnect import LOST
    from chatserver.chat.sessions import reap_sessions

    def reap():
        return reap_sessions(retention_seconds)

    return PeriodicJob("session-reaper", reap, interval, clock, outages=LOST)
