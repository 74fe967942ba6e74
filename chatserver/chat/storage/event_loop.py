"""The PostgreSQL storage of a daemon's event loop: its hot statements on the loop's own
connection (storage/loop_connection.py), no database thread.

A batch of sends is one statement, whatever its rooms (storage/message_sql.py): one round
trip, and the statement passes over stored client_msg_ids by itself, so a batch without
replies or forwards reads nothing before it. What only the ORM does (validating replies and
forwards, looking up the originals of passed-over resends) goes to the database thread. A
batch of connects is three statements and a summary each, built once per process
(storage/connect_sql.py), in one round trip and one transaction.

When the connection breaks or cannot be opened, the batch's senders get 4503 and the connect
fails (the socket closes and the client reconnects); nothing is tried another way, which would
wait on the same server twice and hide the outage. The next call opens a new connection, and
the database thread's connection is checked too (chat/reconnect.py).
"""

import psycopg
from channels.db import database_sync_to_async
from django.db import IntegrityError

from ..reconnect import refused_while_lost, unavailable
from . import connect_sql, message_sql
from .call_queue import Batcher
from .interface import ConnectState, MessageStore
from .loop_connection import CONNECTION_LOST, Unavailable, lost_connection


class EventLoopMessageStore(MessageStore):
    finds_resends = True

    def __init__(self, connection):
        self.connection = connection  # a LoopConnection

    async def store_rooms(self, per_room, outcomes):
        try:
            (rows,) = await self.connection.run([message_sql.statement(per_room)])
        except psycopg.IntegrityError as error:
            raise IntegrityError(*error.args) from error  # MessageStore.store_sends retries
        except (Unavailable, *CONNECTION_LOST) as error:
            await lost_connection()
            raise unavailable() from error
        return message_sql.stored_messages(per_room, rows)

    async def run_orm(self, function, *args):
        return await refused_while_lost(database_sync_to_async(function))(*args)


class EventLoopConnectState(ConnectState):
    """Connects that arrive while one transaction is in flight share the next one (a Batcher):
    in a reconnect storm a commit, with its fsync, serves many sockets instead of one."""

    def __init__(self, connection):
        self.connection = connection  # a LoopConnection
        self._batcher = Batcher(self._open_batch)

    async def opened(self, user, channel_name, with_notifications):
        return await self._batcher.submit((user.pk, channel_name, with_notifications))

    async def _open_batch(self, connects):
        try:
            results = await self.connection.run(connect_sql.statements(connects))
        except (Unavailable, *CONNECTION_LOST):
            await lost_connection()
            raise
        return connect_sql.states_from_rows(connects, results)
