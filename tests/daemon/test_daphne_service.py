"""The embedded Daphne server: direct senders for WebSockets, closes with any valid code."""

import asyncio

from autobahn.websocket.protocol import PreparedMessage
from twisted.internet import reactor

from chatserver.chat.localgroups import DIRECT_SENDER
from chatserver.daemon.daphne_service import DaphneService, DirectSender


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
    assert DIRECT_SENDER not in http_scope.get("extensions", {})
    assert not sender.is_open()  # no handshake yet: the local groups fall back to ASGI send


def test_prepared_frames_are_encoded_once_as_utf8_text():
    server = service(None).server
    sender = DirectSender(server.ws_factory.buildProtocol(None))
    prepared = sender.prepare('{"eventType":"message.dispatch","data":"héllo"}')
    assert isinstance(prepared, PreparedMessage) and not prepared.binary
    assert prepared.payload == '{"eventType":"message.dispatch","data":"héllo"}'.encode()
    assert prepared.payloadHybi.endswith(prepared.payload)


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


class PreparedFrame:
    doNotCompress = False

    def __init__(self, data):
        self.payloadHybi = data


class OpenProtocol:
    """The parts of Autobahn's protocol DirectSender reads."""

    STATE_OPEN = 1
    state = 1
    _perMessageCompress = None

    def __init__(self, transport):
        self.transport = transport
        self.factory = None
        self.send_queue = []


def socket_transport():
    import socket

    from twisted.internet import tcp

    ours, peer = socket.socketpair()
    ours.setblocking(False)
    transport = tcp.Connection(ours, None, reactor)
    transport.connected = 1
    return transport, peer


def buffered(transport):
    return b"".join(transport._tempDataBuffer) + transport.dataBuffer[transport.offset :]


def test_frames_go_straight_to_an_idle_socket():
    transport, peer = socket_transport()
    DirectSender(OpenProtocol(transport)).send_prepared(PreparedFrame(b"frame-1"))
    assert peer.recv(100) == b"frame-1"
    assert buffered(transport) == b""
    transport.stopWriting()


def test_frames_queue_behind_buffered_data_to_keep_the_order():
    transport, peer = socket_transport()
    transport.write(b"reply-first ")  # an ASGI reply still in Twisted's buffer
    DirectSender(OpenProtocol(transport)).send_prepared(PreparedFrame(b"broadcast"))
    assert buffered(transport) == b"reply-first broadcast"
    transport.stopWriting()


def test_what_the_kernel_does_not_take_is_buffered():
    transport, peer = socket_transport()
    big = bytes(range(256)) * 40_000  # 10 MB: more than a socket buffer holds
    DirectSender(OpenProtocol(transport)).send_prepared(PreparedFrame(big))
    rest = buffered(transport)
    assert 0 < len(rest) < len(big)
    assert big.endswith(rest)
    transport.stopWriting()


def test_protocol_class_carries_the_websocket_options():
    server = DaphneService(
        None, ["tcp:0:interface=127.0.0.1"], reactor, max_message_size=12345
    ).server
    protocol_class = server.ws_factory.protocol
    assert protocol_class.maxMessagePayloadSize == 12345
    assert protocol_class.failByDrop is False
    assert "maxMessagePayloadSize" not in vars(server.ws_factory.buildProtocol(None))
