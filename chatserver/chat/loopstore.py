"""Store messages and open sessions on the event loop: an async PostgreSQL connection for the
hot paths.

A message stored through ``database_sync_to_async`` pays more than its statement: a hop to the
database thread and back, and on a busy daemon the wait of that thread for the GIL after every
call into libpq, while the event loop holds it writing to sockets (under load a batch took
several times as long as on an idle daemon). Here the event loop sends the one-statement
insert (services/one_statement.py) on a psycopg ``AsyncConnection`` of its own, one statement
per room of the batch, all in one round trip (the thread's ORM path for several rooms costs one
per room and four more), and goes on writing until PostgreSQL answers. psycopg prepares a
statement it has run five times (Django's connections never do), which spares PostgreSQL the
parsing and planning of every batch (the statement is written so that its generic plan probes
indexes only, see one_statement._sql). An explicit
``prepare_threshold`` in the database OPTIONS wins (None behind a PgBouncer that cannot keep
prepared statements).

The daemon installs one per event loop and closes it on shutdown (a connection must not outlive
its loop); without one, and for every batch the statement cannot store (SQLite, replies and
forwards, which are validated with queries first), batches go through the database thread as
before. Which way a batch goes depends on the batch alone, never on a failure. The rules of a
batch are the same either way: services.messages.SendBatch.

When the database cannot be reached (the connection broke, or cannot be opened) the batch's
senders get error 4503 and resend with the same ``client_msg_id``; nothing is retried another
way, which would wait on the same server twice and hide the outage. The next batch opens a new
connection, and the database thread's connection is checked too (reconnect.py). The one
fallback: a batch the statement refuses with an IntegrityError (a resend racing in from another
connection) is stored again through the database thread, which settles such races.

A new connection's session row, room ids and unread summary (services/connect.py) go the same
way: one round trip of statements built once per process, in place of the ORM's building and
compiling of the summary's queries in the database thread, which was most of a connect's CPU.
"""

import asyncio
import logging
import select
import weakref

import psycopg
from channels.db import database_sync_to_async
from django.db import connections
from psycopg import sql

from .operations import metrics
from .reconnect import drop_dead_thread_connections, refused_while_lost, unavailable
from .services import connect as connect_service
from .services import messages as service
from .services import one_statement

logger = logging.getLogger(__name__)

APPLICATION_NAME = "chatserver event loop"
_stores = weakref.WeakKeyDictionary()  # event loop -> LoopStore

send_messages_in_thread = database_sync_to_async(service.send_messages)
connect_state_in_thread = database_sync_to_async(connect_service.state)


# The loop's psycopg connection broke or could not be opened.
CONNECTION_LOST = (psycopg.OperationalError, psycopg.InterfaceError)


class Unavailable(Exception):
    """The loop's connection could not be opened."""


class LoopStore:
    """One autocommit connection, opened at first use and again after it broke; a statement
    at a time (the message Batcher runs one batch at a time anyway)."""

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
        connection that failed or was interrupted is dropped.
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
            if not _hung_up(connection):
                return connection
            # The server closed it while it was idle (a restart): nothing was sent on it, so
            # this batch goes on a new connection; the database thread's is likely dead too.
            self._drop()
            await _lost_connection()
        settings = connections[self.alias].settings_dict
        params = connections[self.alias].get_connection_params()
        for name in ("cursor_factory", "context", "prepare_threshold"):
            params.pop(name)  # Django's sync cursor and adapters: psycopg's defaults here
        if "prepare_threshold" in settings["OPTIONS"]:
            params["prepare_threshold"] = settings["OPTIONS"]["prepare_threshold"]
        params.setdefault("application_name", APPLICATION_NAME)  # for pg_stat_activity
        try:
            connection = await psycopg.AsyncConnection.connect(**params, autocommit=True)
            try:
                # Its one statement looks rows up by key. A prepared statement's generic plan
                # is made once, maybe while the tables are small and a sequential scan looks
                # cheapest, and kept as they grow: every batch got slower as messages piled up
                # (docs/performance.md, the plan flaw). Index probes stay
                # right at any size.
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


def _hung_up(connection):
    """Whether the server wrote to this idle connection: after a restart or
    pg_terminate_backend it sends a FATAL error and closes the socket, and it sends nothing
    unasked otherwise (no LISTEN here). A look at the socket: no round trip, no blocking."""
    readable, _, _ = select.select([connection.pgconn.socket], [], [], 0)
    return bool(readable)


async def _rows(cursor):
    return [] if cursor.description is None else await cursor.fetchall()


def install(loop):
    """Give ``loop`` a LoopStore (the daemon does, before its loop runs); returns it."""
    store = _stores.get(loop)
    if store is None:
        store = _stores[loop] = LoopStore()
    return store


async def uninstall():
    """Close and forget the running loop's LoopStore, if it has one."""
    store = _stores.pop(asyncio.get_running_loop(), None)
    if store is not None:
        await store.close()


@metrics.message_batches
async def send_messages(requests):
    """``services.messages.send_messages`` for the running loop: on its LoopStore when it has
    one and the batch is the one-room statement's work, else in the database thread. Raises
    the 4503 ProtocolError, for every sender of the batch, when the database cannot be reached.

    A batch of several rooms is one statement per room, in room id order (the order the
    thread's ORM path locks rooms in, so concurrent batches cannot deadlock), in one
    transaction.
    """
    store = _stores.get(asyncio.get_running_loop())
    batch = None if store is None else service.SendBatch(requests, statement_per_room=True)
    if batch is None or not batch.look_up_late:
        return await _in_thread(service.send_messages, requests)
    batch.sort()  # no query: look_up_late
    rooms = sorted(batch.per_room.items())
    stored = {}
    if rooms:
        statements = [one_statement.statement(room_id, messages) for room_id, messages in rooms]
        try:
            results = await store.run(statements)
        except psycopg.IntegrityError:
            # Nothing was stored: a resend raced in from another connection. The fallback: the
            # thread path settles such races (service.send_messages).
            return await _in_thread(service.send_messages, requests)
        except (Unavailable, *CONNECTION_LOST) as error:
            await _lost_connection()
            raise unavailable() from error
        for (_, messages), rows in zip(rooms, results, strict=True):
            stored.update(one_statement.stored_messages(messages, rows))
    passed_over = batch.record(stored)
    if passed_over:
        await _in_thread(batch.look_up, passed_over)
    return batch.finish()


async def _in_thread(function, *args):
    """Run ``function`` in the database thread; a lost connection there is 4503 too."""
    return await refused_while_lost(database_sync_to_async(function))(*args)


async def _lost_connection():
    """The loop's connection broke or cannot be opened: the thread's is likely dead too."""
    try:
        await drop_dead_thread_connections()
    except Exception:  # noqa: BLE001 - a check only; the caller answers 4503 anyway
        logger.debug("checking the database thread's connection failed", exc_info=True)


@metrics.timed_database("connect")
async def connect_state(user, channel_name, with_notifications):
    """``services.connect.state`` for the running loop: on its LoopStore when it has one (one
    round trip, statements built once), else in the database thread. While the database
    cannot be reached this raises, and the socket is closed: the client reconnects."""
    store = _stores.get(asyncio.get_running_loop())
    if store is None or not connect_service.usable():
        return await connect_state_in_thread(user, channel_name, with_notifications)
    statements = connect_service.statements(user.pk, channel_name, with_notifications)
    try:
        results = await store.run(statements)
    except (Unavailable, *CONNECTION_LOST):
        await _lost_connection()
        raise
    return connect_service.state_from_rows(results, with_notifications)
