"""Shared fixtures: a real redis-server, and the Django test database (pytest-django)."""

import pytest

from chatserver.daemon.reactor import install_asyncio_reactor

# Daphne and the daemon need Twisted's asyncio reactor; install it before anything imports the
# default one.
install_asyncio_reactor()

from tests.redis_server import RedisServer  # noqa: E402


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
