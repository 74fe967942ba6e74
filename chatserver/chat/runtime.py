"""What the chat application keeps per event loop, started and stopped by the server that owns
the loop.

The daemon calls ``start(loop)`` once before its loop serves anything and ``await stop()`` on
that loop when it shuts down (daemon/daphne_service.py); nothing else of the chat side is
wired by hand. Per loop this module keeps:

- the storage, chosen once by ``start`` (chat/storage: the event loop's own PostgreSQL
  connection on PostgreSQL, the ORM in the database thread otherwise; a loop nobody started,
  under plain ``daphne`` or ``uvicorn``, stores through the ORM);
- one object per kind and channel layer (the local groups, the presence hub), made at first use
  by their modules through ``per_layer``.

``stop`` closes them, newest first (the presence hub before the local groups it publishes
through), then the storage's connection. Tests start and stop their own loops (tests/chat).
"""

import asyncio
import logging
import weakref

from django.db import DEFAULT_DB_ALIAS, connections

from . import storage
from .operations import metrics

logger = logging.getLogger(__name__)


class _LoopState:
    __slots__ = ("storage", "started", "per_layer", "__weakref__")

    def __init__(self):
        self.storage = storage.PORTABLE
        self.started = False
        self.per_layer = {}  # (kind, id(layer)) -> object holding that layer, in creation order


_loops = weakref.WeakKeyDictionary()  # event loop -> _LoopState


def _state_of(loop):
    state = _loops.get(loop)
    if state is None:
        state = _loops[loop] = _LoopState()
    return state


def start(loop):
    """Give ``loop`` its storage (before it runs: no database call here); idempotent."""
    state = _state_of(loop)
    if not state.started:
        state.storage = storage.for_database(connections[DEFAULT_DB_ALIAS].vendor)
        state.started = True


async def stop():
    """On the started loop, at shutdown, after its sockets' consumers ended: close what
    ``per_layer`` made, newest first, then the storage's connection (its batches are done).
    Each step runs even if the one before failed (logged). The channel layer itself is the
    server's to close, after this."""
    state = _loops.pop(asyncio.get_running_loop(), None)
    if state is None:
        return
    for (kind, _), found in reversed(list(state.per_layer.items())):
        try:
            await found.close()
        except Exception:
            logger.exception("closing the %s failed", kind.__name__)
    try:
        await state.storage.close()
    except Exception:
        logger.exception("closing the event loop's database connection failed")


def per_layer(kind, layer, make):
    """The running loop's one ``kind`` object for the channel layer ``layer``, made by
    ``make()`` at first use (it must keep ``layer`` as ``.layer`` and have a ``close()``
    coroutine, which ``stop`` awaits)."""
    objects = _state_of(asyncio.get_running_loop()).per_layer
    key = (kind, id(layer))  # the object holds the layer: its id stays unique meanwhile
    found = objects.get(key)
    if found is None or found.layer is not layer:
        found = objects[key] = make()
    return found


def every(kind):
    """Every ``kind`` object of every event loop (the daemon's status line counts rooms)."""
    return [
        found
        for state in list(_loops.values())
        for (of_kind, _), found in list(state.per_layer.items())
        if of_kind is kind
    ]


def storage_of_this_loop():
    """The running loop's storage.Storage (``storage.PORTABLE`` when the loop was not started)."""
    state = _loops.get(asyncio.get_running_loop())
    return storage.PORTABLE if state is None else state.storage


@metrics.message_batches
async def store_sends(requests):
    """Store a batch of sends with the running loop's MessageStore (the message call queue's
    batch function): one outcome per request, see ``MessageStore.store_sends``."""
    return await storage_of_this_loop().messages.store_sends(requests)


@metrics.timed_database("connect")
async def connected(user, channel_name, with_notifications):
    """Record a new connection with the running loop's ConnectState: a ``storage.Connected``."""
    return await storage_of_this_loop().connects.opened(user, channel_name, with_notifications)
