"""The event loop's own PostgreSQL connection: the statements of the hot paths run on it.

A statement run through ``database_sync_to_async`` pays more than itself: a hop to the database
thread and back, and on a busy daemon the wait of that thread for the GIL after every call into
libpq, while the event loop holds it writing to sockets. Here the event loop sends its
statements on a psycopg ``AsyncConnection`` of its own, several in one round trip, and goes on
writing until PostgreSQL answers. psycopg prepares a statement it has run five times (Django's
connections never do), which spares PostgreSQL the parsing and planning of every batch. An
explicit ``prepare_threshold`` in the database OPTIONS wins (None behind a PgBouncer that cannot
keep prepared statements).

One connection per event loop (``chat.runtime`` opens it with the loop's storage and closes it
on stop: a connection must not outlive its loop), opened at first use and again after it broke.
When it cannot be opened, ``Unavailable`` is raised and a warning logged once per outage.
"""

import asyncio
import logging
import select

import psycopg
from django.db import connections
from psycopg import sql
from psycopg.pq import ExecStatus

from ..reconnect import drop_dead_thread_connections

logger = logging.getLogger(__name__)

APPLICATION_NAME = "chatserver event loop"  # in pg_stat_activity

# The connection broke or could not be opened.
CONNECTION_LOST = (psycopg.OperationalError, psycopg.InterfaceError)


class Unavailable(Exception):
    """The loop's connection could not be opened."""


class LoopConnection:
    """One autocommit connection; a statement list at a time (the message call queue runs one
    batch at a time anyway)."""

    def __init__(self, alias="default"):
        self.alias = alias
        self._connection = None
        self._lock = asyncio.Lock()
        self._failing = False  # the last connect failed (logged once, not per batch)

    async def run(self, statements):
        """Run ``[(sql, params), ...]`` in one transaction, in order; returns each one's rows
        (``[]`` for a statement that returns none).

        One round trip: in pipeline mode the statements up to a sync are one implicit
        transaction, which PostgreSQL commits at the sync or rolls back as a whole. A
        connection that failed or was interrupted is dropped. Raises psycopg.IntegrityError
        (nothing was stored, the connection is fine), ``Unavailable`` or one of
        ``CONNECTION_LOST``.
        """
        async with self._lock:
            connection = await self._connected()
            try:
                if len(statements) == 1:
                    cursor = await connection.execute(*statements[0])
                    return [await _rows(cursor)]
                async with connection.pipeline() as pipeline:
                    cursors = [await connection.execute(sql, params) for sql, params in statements]
                    await pipeline.sync()
                    return [await _rows(cursor) for cursor in cursors]
            except psycopg.IntegrityError:
                raise  # the transaction failed as a whole; the connection is fine
            except BaseException:  # broken, or cancelled mid-statement: state unknown
                self._drop()
                raise

    async def _connected(self):
        connection = self._connection
        if connection is not None and not connection.closed:
            if not hung_up(connection):
                return connection
            # The server closed it while it was idle (a restart): nothing was sent on it, so
            # this batch goes on a new connection; the database thread's is likely dead too.
            self._drop()
            await lost_connection()
        settings = connections[self.alias].settings_dict
        params = connections[self.alias].get_connection_params()
        for name in ("cursor_factory", "context", "prepare_threshold"):
            params.pop(name)  # Django's sync cursor and adapters: psycopg's defaults here
        if "prepare_threshold" in settings["OPTIONS"]:
            params["prepare_threshold"] = settings["OPTIONS"]["prepare_threshold"]
        params.setdefault("application_name", APPLICATION_NAME)
        try:
            connection = await psycopg.AsyncConnection.connect(**params, autocommit=True)
            try:
                # Its statements look rows up by key. A prepared statement's generic plan
                # is made once, maybe while the tables are small and a sequential scan looks
                # cheapest, and kept as they grow: every batch got slower as messages piled up.
                # Index probes stay right at any size.
                await connection.execute("SET enable_seqscan = off")
                # Timestamps read here become payloads: in the zone Django's connections use.
                zone = connections[self.alias].timezone_name
                if zone and connection.info.parameter_status("TimeZone") != zone:
                    await connection.execute("SELECT set_config('TimeZone', %s, false)", [zone])
                role = settings["OPTIONS"].get("assume_role")
                if role:  # as Django's own connections do
                    await connection.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            except BaseException:
                await connection.close()  # not left open for the garbage collector
                raise
        except psycopg.OperationalError as error:
            if not self._failing:
                logger.warning("Database unavailable, answering 4503 until it is back: %s", error)
            self._failing = True
            raise Unavailable from error
        if self._failing:
            logger.info("Database available again")
        self._failing = False
        self._connection = connection
        return connection

    def _drop(self):
        connection, self._connection = self._connection, None
        if connection is not None and not connection.closed:
            connection.pgconn.finish()  # synchronous: this may run while being cancelled

    async def close(self):
        async with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None:
                await connection.close()


def hung_up(connection):
    """Whether the server wrote to this idle connection: after a restart or
    pg_terminate_backend it sends a FATAL error and closes the socket, and it sends nothing
    unasked otherwise (no LISTEN here). A look at the socket: no round trip, no blocking."""
    readable, _, _ = select.select([connection.pgconn.socket], [], [], 0)
    return bool(readable)


async def _rows(cursor):
    """The statement's rows; ``[]`` for one that returns none. Its result's status, not
    ``cursor.description``, which builds an object per column at every call."""
    result = cursor.pgresult
    if result is None or result.status != ExecStatus.TUPLES_OK:
        return []
    return await cursor.fetchall()


async def lost_connection():
    """The loop's connection broke or cannot be opened: the thread's is likely dead too, so
    check it now (chat/reconnect.py) rather than fail the thread's next request on it."""
    try:
        await drop_dead_thread_connections()
    except Exception:  # noqa: BLE001 - a check only; the caller answers 4503 anyway
        logger.debug("checking the database thread's connection failed", exc_info=True)
