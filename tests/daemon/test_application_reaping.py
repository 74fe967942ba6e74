"""The embedded server forgets a connection when it has closed and its application finished,
whichever comes last, without a sweep over every connection (daemon/application_reaping.py)."""

import asyncio
import logging

import pytest
from twisted.internet import reactor, task

from chatserver.daemon import application_reaping
from chatserver.daemon.daphne_service import DaphneService


@pytest.fixture
def server(monkeypatch):
    clock = task.Clock()
    monkeypatch.setattr(application_reaping, "reactor", clock)
    server = DaphneService(None, ["tcp:0:interface=127.0.0.1"], reactor).server
    server.clock = clock
    return server


def start(server, application):
    server.application = application
    protocol = server.ws_factory.buildProtocol(None)
    protocol.client_addr, protocol.path = ["127.0.0.1", 1], "/messaging/"  # as onConnect sets
    server.protocol_connected(protocol)
    server.create_application(protocol, {"type": "websocket"})
    return protocol


async def test_the_record_goes_with_the_later_of_close_and_finish(server):
    finish = asyncio.Event()

    async def application(scope, receive, send):
        await finish.wait()

    closed_first = start(server, application)
    finished_first = start(server, application)
    server.protocol_disconnected(closed_first)
    assert closed_first in server.connections  # its application still runs
    finish.set()
    await asyncio.sleep(0.01)
    assert closed_first not in server.connections
    assert "application_instance" not in server.connections[finished_first]  # still open
    server.protocol_disconnected(finished_first)
    server.protocol_disconnected(finished_first)  # a reject, then the close: no error
    assert server.connections == {}


async def test_an_application_outliving_its_connection_is_cancelled_after_the_timeout(server):
    cancelled = asyncio.Event()

    async def stuck(scope, receive, send):
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    protocol = start(server, stuck)
    server.application_close_timeout = 10
    server.protocol_disconnected(protocol)
    server.application_checker()
    await asyncio.sleep(0.01)
    assert not cancelled.is_set() and protocol in server.connections
    server.connections[protocol]["disconnected"] -= 11
    server.clock.advance(1)  # the next check, one second later
    await asyncio.wait_for(cancelled.wait(), 1)
    await asyncio.sleep(0.01)
    assert server.connections == {}
    assert server.clock.getDelayedCalls()  # the check goes on


async def test_a_failed_application_is_reported_as_daphne_reports_it(server, caplog):
    async def failing(scope, receive, send):
        raise ValueError("boom")

    handled = []
    protocol = start(server, failing)
    protocol.handle_exception = handled.append
    with caplog.at_level(logging.ERROR, logger="daphne.server"):
        await asyncio.sleep(0.01)
    assert "Exception inside application: boom" in caplog.text
    assert [type(error) for error in handled] == [ValueError]  # still open: answered
    server.protocol_disconnected(protocol)
    assert server.connections == {}
