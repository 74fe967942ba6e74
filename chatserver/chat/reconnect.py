"""Notice a lost database connection before a request does, so the next call reconnects.

Django keeps the database thread's connection open (``CONN_MAX_AGE``) and, without
``CONN_HEALTH_CHECKS`` (a round trip before every call, which the hot paths do not pay),
finds out that PostgreSQL restarted only when a query fails on it: one failed request per
connection after every restart. The daemon's own signs of an outage (the event loop's
connection found closed by the server, or broken mid-statement; a housekeeping run is due)
check the thread's connections instead, one ``SELECT 1`` each, and close the dead ones; Django
opens a new one at the next query.
"""

import functools
import logging

from channels.db import database_sync_to_async
from django.db import InterfaceError, OperationalError, connections

from .protocol import ERROR_UNAVAILABLE, ProtocolError

logger = logging.getLogger(__name__)

# What a query raises when the server went away, is restarting or refuses connections.
LOST = (OperationalError, InterfaceError)


def drop_dead_connections():
    """Close this thread's database connections that no longer answer; returns how many."""
    dropped = 0
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and not connection.is_usable():
            connection.close()
            dropped += 1
    return dropped


drop_dead_thread_connections = database_sync_to_async(drop_dead_connections)


def unavailable():
    """The error a request gets while the database cannot be reached: 4503, retry."""
    return ProtocolError(
        ERROR_UNAVAILABLE, "The database is unavailable; retry (a message with its client_msg_id)."
    )


def refused_while_lost(function):
    """Wrap an async database call so that a lost connection answers 4503, not 4006, and is
    closed at once, so the next call opens a new one.

    Channels closes a broken connection after the call too, but from the worker thread's own
    context: where the calls ran in contexts of their own (many consumers at once), the one
    that broke can be out of its sight and kept, failing every later call.
    """

    @functools.wraps(function)
    async def call(*args, **kwargs):
        try:
            return await function(*args, **kwargs)
        except LOST as error:
            try:
                await drop_dead_thread_connections()
            except Exception:  # noqa: BLE001 - a check only; the caller gets 4503 anyway
                logger.debug("checking the database thread's connection failed", exc_info=True)
            raise unavailable() from error

    return call
