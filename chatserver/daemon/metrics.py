"""The daemon's Prometheus metrics and the ``--metrics`` listener that serves them.

The chat application's metrics (chatserver/chat/operations/metrics.py) and these live in
prometheus_client's process-wide registry; with ``--metrics`` a separate twisted.web site serves
it at ``/metrics`` with prometheus_client's Twisted resource (the registry is read in the
reactor's thread pool). That listener is for operators: loopback or a Unix socket unless
``--metrics-allow-remote``, and never proxied by nginx. Without ``--metrics`` nothing listens and
the probe below does not run.
"""

from prometheus_client import Counter, Gauge, Histogram
from twisted.application import service

PREFIX = "chatserver_"

open_websockets = Gauge(
    PREFIX + "open_websockets",
    "WebSockets open in this process (read from Daphne's connections at each scrape).",
)
event_loop_lag = Histogram(
    PREFIX + "event_loop_lag_seconds",
    "How late the reactor ran a timer (one every 0.5 s with --metrics): time the event loop "
    "spent on other work (fan-out, a slow callback, a GC pause) before it got to it.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
maintenance_runs = Counter(
    PREFIX + "maintenance_runs",
    "Runs of the housekeeping jobs, by job (heartbeat-sweeper, session-reaper) and outcome "
    "(ok, failed).",
    ["job", "outcome"],
)
maintenance_sessions = Counter(
    PREFIX + "maintenance_sessions",
    "Sessions the housekeeping jobs acted on, by job: closed with 4408 by the "
    "heartbeat-sweeper, rows deleted by the session-reaper.",
    ["job"],
)

handshakes_in_flight = Gauge(
    PREFIX + "handshakes_in_flight",
    "Connections whose request is in and not yet answered (WebSocket opened, HTTP response "
    "finished); the listening sockets stop reading at --max-handshakes.",
)
accept_pauses = Counter(
    PREFIX + "accept_pauses",
    "Times the listening sockets stopped reading because --max-handshakes requests were "
    "awaiting their answer (admission.py).",
)

LAG_PROBE_INTERVAL = 0.5  # seconds: small enough to catch a pause, cheap enough to forget


def job_succeeded(job, result):
    """A PeriodicJob run finished; ``result`` is how many sessions it closed or deleted."""
    maintenance_runs.labels(job, "ok").inc()
    if isinstance(result, int) and result > 0:
        maintenance_sessions.labels(job).inc(result)


def job_failed(job):
    maintenance_runs.labels(job, "failed").inc()


class EventLoopLagProbe(service.Service):
    """Schedule a timer every ``interval`` seconds and record how late it fires."""

    def __init__(self, clock, interval=LAG_PROBE_INTERVAL, histogram=event_loop_lag):
        self.clock = clock
        self.interval = interval
        self.histogram = histogram
        self._due = None
        self._call = None

    def startService(self):
        super().startService()
        self._schedule()

    def _schedule(self):
        self._due = self.clock.seconds() + self.interval
        self._call = self.clock.callLater(self.interval, self._fired)

    def _fired(self):
        # asyncio may run a timer up to its clock resolution early: that is no lag.
        self.histogram.observe(max(0.0, self.clock.seconds() - self._due))
        self._schedule()

    def stopService(self):
        super().stopService()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None


def metrics_site():
    """A twisted.web Site serving the process-wide registry at /metrics (404 elsewhere)."""
    from prometheus_client.twisted import MetricsResource  # imports the installed reactor
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    root = Resource()
    root.putChild(b"metrics", MetricsResource())
    site = Site(root)
    site.log = lambda request: None  # a scrape every few seconds is no news for the log
    return site


def metrics_service(endpoint, reactor, daphne):
    """The ``--metrics`` services: the listener and the event-loop lag probe; the open-socket
    gauge reads ``daphne``'s connections at each scrape."""
    from prometheus_client import disable_created_metrics

    from .listening import ListeningService

    disable_created_metrics()  # the *_created series only double the page
    open_websockets.set_function(daphne.connection_count)
    handshakes_in_flight.set_function(lambda: daphne.admission.in_flight)
    metrics = service.MultiService()
    metrics.setName("metrics")
    listener = ListeningService(reactor, endpoint, metrics_site())
    listener.setName("metrics")
    listener.setServiceParent(metrics)
    EventLoopLagProbe(reactor).setServiceParent(metrics)
    return metrics
