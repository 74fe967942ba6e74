"""The handler table: one coroutine ``handler(conn, frame, data)`` per client event.

The table is built from the event catalogue (protocol/catalogue.py), which names each event's
handler as ``module.function`` in this package: a catalogue entry whose handler is missing
fails here, at import, rather than on the first frame.

``data`` has been validated against the event's fields. Handlers raise ProtocolError for
refusals; the consumer turns any exception into the error frame. An event marked ``pipelined``
may finish its answer with ``conn.later``: the consumer reads the next frame meanwhile, and
answers stay in frame order (any other event waits for them first).
"""

from importlib import import_module

from ..protocol import CLIENT_EVENTS


def _handler(path):
    module, function = path.split(".")
    return getattr(import_module(f"{__name__}.{module}"), function)


HANDLERS = {name: _handler(event.handler) for name, event in CLIENT_EVENTS.items()}

PIPELINED = frozenset(name for name, event in CLIENT_EVENTS.items() if event.pipelined)
