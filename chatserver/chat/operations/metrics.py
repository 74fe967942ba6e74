"""The chat application's Prometheus metrics, in prometheus_client's process-wide registry.

Defining them costs nothing at run time and serves nothing: the daemon's ``--metrics`` listener
(chatserver/daemon/metrics.py) exposes the registry, and under plain daphne or uvicorn the
counters simply count unread. The fan-out path updates them once per batch or per room frame,
never once per socket, and no label names a room or a user (every label has a handful of
values).
"""

import functools
from time import perf_counter

from prometheus_client import Counter, Histogram

PREFIX = "chatserver_"
# Database and channel-layer calls: a fraction of a millisecond on a quiet host, up to seconds
# when PostgreSQL or Redis struggles.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

websocket_connects = Counter(
    PREFIX + "websocket_connects",
    "WebSocket connections to /messaging/, by outcome: accepted (authenticated) or refused "
    "(closed with 4001).",
    ["outcome"],
)
connects_accepted = websocket_connects.labels("accepted")
connects_refused = websocket_connects.labels("refused")

messages_stored = Counter(
    PREFIX + "messages_stored",
    "Messages stored (resends of a known client_msg_id and refused sends not counted).",
)
message_batch_size = Histogram(
    PREFIX + "message_batch_size",
    "Sends stored per database call (the message Batcher coalesces concurrent sends).",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
room_frame_deliveries = Counter(
    PREFIX + "room_frame_deliveries",
    "Room broadcast frames handed to this process's sockets (one per member socket and frame).",
)
frames_dropped_total = Counter(
    PREFIX + "frames_dropped",
    "Frames not written to a socket, by reason: closed (the socket closed with frames queued) "
    "or buffer_full (the socket's send buffer bound refused them).",
    ["reason"],
)
database_seconds = Histogram(
    PREFIX + "database_seconds",
    "Latency of the hot database calls, by operation: store_messages (one batch) or connect "
    "(a new socket's session row, rooms and unread summary).",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
channel_layer_seconds = Histogram(
    PREFIX + "channel_layer_seconds",
    "Latency of channel-layer calls (Redis in production), by operation: group_send (one "
    "outbox batch), group_add, group_discard.",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
layer_group_send = channel_layer_seconds.labels("group_send")
layer_group_add = channel_layer_seconds.labels("group_add")
layer_group_discard = channel_layer_seconds.labels("group_discard")


def frames_dropped(n, reason):
    """Count ``n`` frames that were not written to a socket; ``reason`` is one of a few fixed
    words (closed, buffer_full), never an id."""
    frames_dropped_total.labels(reason).inc(n)


def timed_database(operation):
    """Decorate an async database call: its latency goes to ``database_seconds``."""
    histogram = database_seconds.labels(operation)

    def decorate(call):
        @functools.wraps(call)
        async def timed(*args, **kwargs):
            started = perf_counter()
            try:
                return await call(*args, **kwargs)
            finally:
                histogram.observe(perf_counter() - started)

        return timed

    return decorate


def message_batches(send_messages):
    """Decorate ``send_messages(requests) -> outcomes``: time each batch, record its size and
    count the messages it stored (an outcome is ``(payload, duplicate)`` or an exception)."""
    timed = timed_database("store_messages")(send_messages)

    @functools.wraps(send_messages)
    async def counted(requests):
        outcomes = await timed(requests)
        message_batch_size.observe(len(requests))
        messages_stored.inc(sum(type(o) is tuple and not o[1] for o in outcomes))
        return outcomes

    return counted
