"""Run a command against a throwaway PostgreSQL cluster: ``python -m tests.on_postgres CMD...``.

Production runs on PostgreSQL, whose locking differs from SQLite's; ``make test`` runs the chat
suite a second time here, with ``DATABASE_URL`` naming a fresh cluster on a Unix socket. Exits
with the command's status.
"""

import os
import subprocess
import sys

from tests.support.postgres import postgres_bindir, throwaway_postgres


def main(argv):
    if not argv:
        sys.exit("usage: python -m tests.on_postgres COMMAND [ARGS...]")
    if postgres_bindir() is None:
        sys.exit("PostgreSQL is not installed: `make test` installs Debian's postgresql.")
    with throwaway_postgres(databases=("chatserver",), max_connections=100) as cluster:
        env = dict(os.environ, DATABASE_URL=cluster.url("chatserver"))
        print(f"on_postgres: {cluster.url('chatserver')}", flush=True)
        return subprocess.call(argv, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
