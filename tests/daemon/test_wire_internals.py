"""Every private attribute of Twisted, Autobahn and Daphne that wire_internals.py uses exists on
real instances of the real classes: an upgrade that renames one fails here, naming it and the
package version, instead of breaking the daemon's writes at run time."""

import socket
from collections import deque
from importlib.metadata import version
from types import SimpleNamespace

import pytest
from autobahn.websocket.protocol import PreparedMessage
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import reactor, tcp
from twisted.internet.testing import StringTransport

from chatserver.daemon import wire_internals as wire
from chatserver.daemon.daphne_service import DaphneService

PACKAGES = {"twisted": "Twisted", "autobahn": "autobahn", "daphne": "daphne"}


@pytest.fixture
def instances():
    """Real objects of each class wire_internals.py names, as the daemon has them."""
    server = DaphneService(None, ["tcp:0:interface=127.0.0.1"], reactor).server
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    connection = tcp.Connection(ours, None, reactor)
    protocol = server.ws_factory.buildProtocol(None)
    protocol.makeConnection(StringTransport())  # Autobahn sets most of its state here
    objects = {
        "twisted.internet.tcp.Connection": connection,
        "autobahn WebSocketServerProtocol (connected)": protocol,
        "autobahn WebSocketServerFactory": server.ws_factory,
        "autobahn PreparedMessage": server.ws_factory.prepareMessage(b"x"),
        "daphne.ws_protocol.WebSocketProtocol": protocol,
    }
    yield objects
    ours.close()
    peer.close()


def test_the_instances_are_of_the_classes_named(instances):
    assert isinstance(instances["autobahn PreparedMessage"], PreparedMessage)
    assert isinstance(instances["daphne.ws_protocol.WebSocketProtocol"], WebSocketProtocol)


@pytest.mark.parametrize(
    ("package", "what", "name"),
    [
        (package, what, name)
        for package, classes in wire.USED.items()
        for what, names in classes.items()
        for name in names
    ],
)
def test_internal_exists(instances, package, what, name):
    if not hasattr(instances[what], name):
        pytest.fail(
            f"{PACKAGES[package]} {version(PACKAGES[package])}: {what} has no attribute "
            f"{name!r}, which chatserver/daemon/wire_internals.py relies on; adapt that module "
            "(and its docstring) to the new version, or pin the old one in pyproject.toml"
        )


def test_config_attributes_are_factory_options(instances):
    factory = instances["autobahn WebSocketServerFactory"]
    protocol_class = type(instances["autobahn WebSocketServerProtocol (connected)"])
    missing = [
        name for name in wire.config_attributes(protocol_class) if not hasattr(factory, name)
    ]
    assert not missing, f"autobahn {version('autobahn')}: factory lacks options {missing}"


def test_unsent_bytes_counts_what_the_kernel_did_not_take():
    """The meaning of dataBuffer/offset/_tempDataBuffer, not only their names."""
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    connection = tcp.Connection(ours, None, reactor)
    connection.connected = 1
    protocol = SimpleNamespace(transport=connection, send_queue=deque())
    try:
        data = b"x" * (4 * 1024 * 1024)
        taken = wire.write_if_idle(protocol, data)
        assert 0 < taken < len(data)
        connection.write(data[taken:])
        assert wire.unsent_bytes(connection) == len(data) - taken
        assert wire.write_if_idle(protocol, b"y") == 0  # would overtake the unsent bytes
        connection.doWrite()  # joins the writes into dataBuffer and sends some more
        peer.setblocking(False)
        received = 0
        try:
            while chunk := peer.recv(1 << 20):
                received += len(chunk)
        except BlockingIOError:
            pass
        assert received > taken
        assert wire.unsent_bytes(connection) == len(data) - received
        assert wire.unsent_head(connection, 5) == b"xxxxx"
        wire.replace_unsent(connection, b"tail")
        assert wire.unsent_bytes(connection) == 4
        assert wire.unsent_head(connection, 10) == b"tail"
    finally:
        connection.stopWriting()
        ours.close()
        peer.close()


def test_prepared_frames_are_the_bytes_on_the_wire(instances):
    prepared = wire.Frame(instances["autobahn PreparedMessage"])
    assert wire.wire_bytes(prepared) == b"\x81\x01x"  # FIN + text, unmasked, length 1
    binary = wire.prepare(instances["autobahn WebSocketServerFactory"], b"", binary=True)
    assert wire.wire_bytes(binary) == b"\x82\x00"


def test_autobahn_formats_its_options_only_for_a_line_that_is_written():
    import inspect
    import pprint

    from autobahn.websocket import protocol

    # What lazy_config_dump replaces is still what every connection calls.
    assert "pformat(configAttrLog)" in inspect.getsource(protocol.WebSocketProtocol._connectionMade)
    wire.lazy_config_dump()
    options = [("openHandshakeTimeout", 5, "ChatWebSocketProtocol"), ("autoPingSize", 4, "x")]
    assert f"\n{protocol.pformat(options)}" == "\n" + pprint.pformat(options)
