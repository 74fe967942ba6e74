"""What the chat application keeps per event loop, started and stopped by the server that owns
the loop.

The daemon calls ``start(loop)`` once before its loop serves anything and ``await stop()`` on
that loop when it shuts down (daemon/daphne_service.py); nothing else of the chat side is
wired by hand. ``start`` chooses the loop's storage once (chat/storage: the event loop's own
PostgreSQL connection on PostgreSQL, the ORM in the database thread otherwise); ``stop``
closes what the loop's sockets left behind (the local groups' layer subscriptions, then the
storage's connection). Under plain ``daphne`` or ``uvicorn`` nobody calls them: a loop that was
not started stores through the ORM, and tests start and stop their own loops (tests/chat).
"""

import asyncio
import logging
import weakref

from django.db import DEFAULT_DB_ALIAS, connections

from . import metrics, storage
from .localgroups import close_all as close_local_groups

logger = logging.getLogger(__name__)

_started = weakref.WeakKeyDictionary()  # event loop -> storage.Storage


def start(loop):
    """Give ``loop`` its storage (before it runs: no database call here); idempotent."""
    if loop not in _started:
        _started[loop] = storage.for_database(connections[DEFAULT_DB_ALIAS].vendor)


async def stop():
    """On the started loop, at shutdown, after its sockets' consumers ended: leave the layer's
    groups, then close the storage's connection (its batches are done). Each step runs even if
    the one before failed (logged). The channel layer itself is the server's to close."""
    loop = asyncio.get_running_loop()
    try:
        await close_local_groups()
    except Exception:
        logger.exception("closing the local groups failed")
    started = _started.pop(loop, None)
    if started is not None:
        try:
            await started.close()
        except Exception:
            logger.exception("closing the event loop's database connection failed")


def storage_of_this_loop():
    """The running loop's storage.Storage (``storage.PORTABLE`` when the loop was not started)."""
    return _started.get(asyncio.get_running_loop(), storage.PORTABLE)


@metrics.message_batches
async def store_sends(requests):
    """Store a batch of sends with the running loop's MessageStore (the message call queue's
    batch function): one outcome per request, see ``MessageStore.store_sends``."""
    return await storage_of_this_loop().messages.store_sends(requests)


@metrics.timed_database("connect")
async def connected(user, channel_name, with_notifications):
    """Record a new connection with the running loop's ConnectState: a ``storage.Connected``."""
    return await storage_of_this_loop().connects.opened(user, channel_name, with_notifications)
