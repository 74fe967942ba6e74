"""Throwaway Redis and PostgreSQL for one bench run, on Unix sockets in a temp directory: the
tests' launchers (tests/support/) with the bench's limits."""

from tests.support.postgres import Postgres as ThrowawayPostgres
from tests.support.postgres import postgres_bindir
from tests.support.redis import RedisServer

__all__ = ["Postgres", "Redis", "postgres_bindir"]

# ``--unsafe-fast-db`` only: PostgreSQL skips its flushes (a commit costs less than in
# production). By default the bench's cluster is durable, as production is.
NOT_DURABLE = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class Redis(RedisServer):
    """Started at once, on a Unix socket, with room for every bench connection."""

    def __init__(self, workdir):
        super().__init__(workdir, unix_socket=True, maxclients=20000)
        self.start()


class Postgres(ThrowawayPostgres):
    """Started at once, with connections for every server's pool. ``durable`` keeps
    PostgreSQL's production defaults (``fsync``, ``synchronous_commit``, ``full_page_writes``
    on); without it the cluster skips the flushes, for quick runs only."""

    def __init__(self, workdir, databases=("chatbench",), max_connections=300, durable=True):
        settings = {
            "shared_buffers": "128MB",
            # Logging only: the run keeps the log (postgres.log in --out), so a latency step can
            # be laid beside the checkpoints and autovacuum runs that fell inside it.
            "log_checkpoints": "on",
            "log_autovacuum_min_duration": "0",
            "log_line_prefix": "'%m '",
            **({} if durable else NOT_DURABLE),
        }
        super().__init__(workdir, databases, max_connections, settings=settings)
        self.durable = durable
