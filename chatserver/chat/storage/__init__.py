"""Storage: where messages and connects are written, behind one interface.

- ``interface.py``: ``MessageStore`` (batches of sends, system messages; the steps of a batch
  and its one retry, written once) and ``ConnectState`` (a connect's session row, rooms,
  open-socket count and unread summary).
- ``orm.py``: the portable implementation, Django's ORM in the database thread (SQLite, tests,
  plain daphne or uvicorn).
- ``event_loop.py``: the PostgreSQL implementation for a daemon's event loop, on the loop's own
  connection (``loop_connection.py``), with the statements of ``message_sql.py`` and
  ``connect_sql.py``.
- ``send_batch.py``: the rules of a batch of sends; ``call_queue.py``: the queue that gathers
  concurrent calls into batches.
- ``raw_reads.py``: reads by id list as SQL written once per process (token checks, resumes);
  ``array_in.py``: ``__in`` on PostgreSQL as one array parameter.

``for_database(vendor)`` chooses once, when chat.runtime starts an event loop; a loop nobody
started uses ``PORTABLE``.
"""

from .event_loop import EventLoopConnectState, EventLoopMessageStore
from .interface import Connected, ConnectState, MessageStore
from .loop_connection import LoopConnection
from .orm import OrmConnectState, OrmMessageStore

__all__ = ["PORTABLE", "Connected", "ConnectState", "MessageStore", "Storage", "for_database"]


class Storage:
    """The MessageStore and ConnectState of one event loop, and the connection they share."""

    __slots__ = ("messages", "connects", "connection")

    def __init__(self, messages, connects, connection=None):
        self.messages = messages
        self.connects = connects
        self.connection = connection  # a LoopConnection, or None

    async def close(self):
        """Close the connection (the runtime does when the event loop stops)."""
        if self.connection is not None:
            await self.connection.close()


PORTABLE = Storage(OrmMessageStore(), OrmConnectState())


def for_database(vendor):
    """The storage for an event loop on a database of ``vendor`` (Django's name for it)."""
    if vendor != "postgresql":
        return PORTABLE
    connection = LoopConnection()
    return Storage(EventLoopMessageStore(connection), EventLoopConnectState(connection), connection)
