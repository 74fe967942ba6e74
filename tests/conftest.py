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
