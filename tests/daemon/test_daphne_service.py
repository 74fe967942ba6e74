"""The embedded Daphne server: direct senders for WebSockets, closes with any valid code."""

import asyncio
from types import SimpleNamespace

from autobahn.websocket.protocol import PreparedMessage
from twisted.internet import reactor

from chatserver.chat import direct_sender
from chatserver.chat.direct_sender import SCOPE_KEY as DIRECT_SENDER
from chatserver.daemon.daphne_service import DaphneService
from chatserver.daemon.direct_send import DirectSender


def service(application):
    return DaphneService(application, ["tcp:0:interface=127.0.0.1"], reactor)


async def test_websocket_scopes_carry_a_direct_sender_http_scopes_do_not():
    scopes = []

    async def application(scope, receive, send):
        scopes.append(scope)

    server = service(application).server
    websocket = server.ws_factory.buildProtocol(None)
    http = server.http_factory.buildProtocol(None)
    for protocol, scope in ((websocket, {"type": "websocket"}), (http, {"type": "http"})):
        server.protocol_connected(protocol)
        server.create_application(protocol, scope)
    await asyncio.sleep(0)
    websocket_scope, http_scope = scopes
    sender = websocket_scope["extensions"][DIRECT_SENDER]
    assert isinstance(sender, DirectSender) and sender.protocol is websocket
    assert isinstance(sender, direct_sender.DirectSender)  # the contract's methods are there
    assert direct_sender.direct_sender_of(websocket_scope) is sender
    assert DIRECT_SENDER not in http_scope.get("extensions", {})
    assert not sender.is_open()  # no handshake yet: the local groups fall back to ASGI send


def test_prepared_frames_are_encoded_once_as_utf8_text():
    server = service(None).server
    sender = DirectSender(server.ws_factory.buildProtocol(None), server.direct_writes)
    frame = sender.prepare('{"eventType":"message.dispatch","data":"héllo"}')
    prepared = frame.message
    assert isinstance(prepared, PreparedMessage) and not prepared.binary
    assert prepared.payload == '{"eventType":"message.dispatch","data":"héllo"}'.encode()
    assert frame.data == prepared.payloadHybi and frame.data.endswith(prepared.payload)


def test_reading_a_frame_formats_no_debug_line(monkeypatch):
    """Autobahn's dataReceived formats a debug line's arguments for every read, logging on or
    off; the daemon's protocol hands the bytes to the same parser without it."""
    import autobahn.twisted.websocket
    from twisted.internet.testing import StringTransport

    def formatted(*args, **kwargs):
        raise AssertionError("a debug line was formatted")

    protocol = service(None).server.ws_factory.buildProtocol(None)
    parsed = []
    protocol._dataReceived = parsed.append
    protocol.makeConnection(StringTransport())
    monkeypatch.setattr(autobahn.twisted.websocket, "hltype", formatted)
    monkeypatch.setattr(autobahn.twisted.websocket, "hlval", formatted)
    protocol.dataReceived(b"GET /messaging/ HTTP/1.1\r\n")
    assert parsed == [b"GET /messaging/ HTTP/1.1\r\n"]


def test_close_codes_outside_autobahns_send_close_range_use_a_close_frame():
    server = service(None).server
    protocol = server.ws_factory.buildProtocol(None)
    sent = []
    protocol.sendClose = lambda code: sent.append(("sendClose", code))
    protocol.sendCloseFrame = lambda code, isReply: sent.append(("frame", code, isReply))
    for code in (None, 4001, 1009, 1001):
        protocol.serverClose(code)
    assert sent == [
        ("sendClose", 1000),
        ("sendClose", 4001),
        ("frame", 1009, False),
        ("frame", 1001, False),
    ]


def test_protocol_class_carries_the_websocket_options():
    server = DaphneService(
        None, ["tcp:0:interface=127.0.0.1"], reactor, max_message_size=12345
    ).server
    protocol_class = server.ws_factory.protocol
    assert protocol_class.maxMessagePayloadSize == 12345
    assert protocol_class.failByDrop is False
    assert "maxMessagePayloadSize" not in vars(server.ws_factory.buildProtocol(None))


def test_an_accept_after_the_opening_handshake_timed_out_is_dropped():
    """Under a reconnect storm the application may accept after Autobahn dropped the connection
    (its opening-handshake timeout): the late accept must not reopen it, or losing the
    connection resolves ``is_closed`` a second time (AlreadyCalledError in the log)."""
    from twisted.internet import defer
    from twisted.internet.error import ConnectionDone
    from twisted.internet.testing import StringTransport
    from twisted.python.failure import Failure

    server = service(None).server
    protocol = server.ws_factory.buildProtocol(None)
    transport = StringTransport()
    transport.registerProducer(protocol, True)  # as on a real connection
    protocol.makeConnection(transport)
    # As Daphne's onConnect leaves it: the application is deciding whether to accept.
    protocol.server, protocol.client_addr, protocol.muted = server, None, False
    protocol.request = SimpleNamespace(path="/messaging/")
    server.connections[protocol] = {}
    protocol.handshake_deferred = defer.Deferred()
    accepted = []
    protocol.handshake_deferred.addCallback(accepted.append)
    protocol.dropConnection(abort=True)  # what the handshake timeout does
    protocol.handle_reply({"type": "websocket.accept"})
    assert accepted == [] and protocol.state == protocol.STATE_CLOSED
    protocol.connectionLost(Failure(ConnectionDone()))  # raised AlreadyCalledError before
