"""Shared fixtures (a real redis-server, the Django test database through pytest-django) and
the markers, applied here rather than test by test:

- ``e2e``: the test runs processes (twistd, the ``chatserver`` command, nginx, a browser, or
  another through ``subprocess``), read from its code and its fixtures' (tests/support/markers);
- ``postgres``: PostgreSQL only; skipped unless ``DATABASE_URL`` names PostgreSQL, as under
  ``python -m tests.on_postgres`` (``make test`` runs these in its PostgreSQL pass);
- ``slow``: the bench's smoke run and the long fault tests, marked in their modules.

``make test-quick`` runs ``-m "not slow and not e2e"``.
"""

import os

import pytest

from chatserver.daemon.reactor import install_asyncio_reactor

# Daphne and the daemon need Twisted's asyncio reactor; install it before anything imports the
# default one.
install_asyncio_reactor()

from tests.support.markers import is_end_to_end  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402

ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith("postgres")


@pytest.hookimpl(tryfirst=True)  # before -m selects on the markers
def pytest_collection_modifyitems(config, items):
    for item in items:
        if is_end_to_end(item):
            item.add_marker(pytest.mark.e2e)
        if item.get_closest_marker("postgres") and not ON_POSTGRES:
            item.add_marker(
                pytest.mark.skip(reason="PostgreSQL only: python -m tests.on_postgres pytest ...")
            )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    """A Redis URL with an empty database for each test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture(scope="session", autouse=True)
def close_async_thread_connections(django_db_setup, django_db_blocker):
    """Close the database connections kept by database_sync_to_async's worker thread.

    With persistent connections (CONN_MAX_AGE, as on PostgreSQL) that thread keeps one open,
    which would stop the test database from being dropped at the end of the run.
    """
    yield
    import asyncio

    from channels.db import database_sync_to_async
    from django.db import connections

    with django_db_blocker.unblock():
        asyncio.run(database_sync_to_async(connections.close_all)())


@pytest.fixture(autouse=True)
def fresh_replay_cache():
    """Every test replays from an empty cache of replayed frames: rolled-back rooms reuse ids
    and seqs, and a frame kept by an earlier test would answer for them
    (chat/services/replay_cache.py)."""
    from chatserver.chat.services.eventlog import replay_cache

    replay_cache.clear()
    yield
    replay_cache.clear()
