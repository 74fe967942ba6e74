"""Throwaway Redis and PostgreSQL for one bench run, on Unix sockets in a temp directory: the
tests' launchers (tests/support/) with the bench's limits and a cluster that does not sync."""

from tests.support.postgres import Postgres as ThrowawayPostgres
from tests.support.postgres import postgres_bindir
from tests.support.redis import RedisServer

__all__ = ["Postgres", "Redis", "postgres_bindir"]

# The bench measures the chat path, not the disk: no fsync, no synchronous commit.
NOT_DURABLE = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "128MB",
}


class Redis(RedisServer):
    """Started at once, on a Unix socket, with room for every bench connection."""

    def __init__(self, workdir):
        super().__init__(workdir, unix_socket=True, maxclients=20000)
        self.start()


class Postgres(ThrowawayPostgres):
    """Started at once, with connections for every server's pool and no durability."""

    def __init__(self, workdir, databases=("chatbench",), max_connections=300):
        super().__init__(workdir, databases, max_connections, settings=NOT_DURABLE)
