"""Direct room frames: queued per socket during a loop pass, written once, in order."""

import asyncio
import socket
from collections import deque
from types import SimpleNamespace

from autobahn.websocket.protocol import TrafficStats
from twisted.internet import reactor, tcp

from chatserver.daemon import wire_internals as wire
from chatserver.daemon.daphne_service import DaphneService
from chatserver.daemon.direct_send import DirectFrames, DirectSender


def open_protocol():
    """A chat WebSocket protocol in the open state on one end of a socket pair."""
    server = DaphneService(None, ["tcp:0:interface=127.0.0.1"], reactor).server
    protocol = server.ws_factory.buildProtocol(None)
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.settimeout(2)
    transport = tcp.Connection(ours, protocol, reactor)
    transport.connected = 1
    protocol.transport = transport
    protocol.state = protocol.STATE_OPEN
    protocol.send_queue = deque()
    protocol.trafficStats = TrafficStats()
    protocol._perMessageCompress = None
    return server, protocol, peer


def sender_for(server, protocol):
    return DirectSender(protocol, server.direct_writes)


def PreparedFrame(data):  # noqa: N802 - reads like the class it stands for
    """A frame whose bytes on the wire are ``data``."""
    return wire.Frame(SimpleNamespace(payloadHybi=data, doNotCompress=False))


def count_writes(transport):
    writes = []
    write_some = transport.writeSomeData

    def counted(data):
        writes.append(bytes(data))
        return write_some(data)

    transport.writeSomeData = counted
    return writes


def nothing_to_read(peer):
    peer.setblocking(False)
    try:
        return peer.recv(100) == b""
    except BlockingIOError:
        return True
    finally:
        peer.settimeout(2)


def buffered(transport):
    return b"".join(transport._tempDataBuffer) + transport.dataBuffer[transport.offset :]


async def test_frames_of_one_loop_pass_reach_the_socket_in_one_write():
    server, protocol, peer = open_protocol()
    writes = count_writes(protocol.transport)
    sender = sender_for(server, protocol)
    for n in range(3):
        sender.send_prepared(PreparedFrame(b"frame-%d " % n))
    assert nothing_to_read(peer)  # queued until the pass ends
    await asyncio.sleep(0)
    assert writes == [b"frame-0 frame-1 frame-2 "]
    assert peer.recv(100) == b"frame-0 frame-1 frame-2 "
    assert buffered(protocol.transport) == b""
    protocol.transport.stopWriting()


async def test_other_writes_send_the_queued_frames_first():
    server, protocol, peer = open_protocol()
    sender = sender_for(server, protocol)
    sender.send_prepared(PreparedFrame(b"broadcast "))
    protocol.sendData(b"reply ")  # what an ASGI send, a ping or a close frame goes through
    sender.send_prepared(PreparedFrame(b"next-broadcast"))
    await asyncio.sleep(0)
    # the first frame went out before the reply; the reply waits in Twisted's buffer, and the
    # frame queued after it goes behind it
    assert peer.recv(100) == b"broadcast "
    assert buffered(protocol.transport) == b"reply next-broadcast"
    protocol.transport.stopWriting()


async def test_frames_queue_behind_buffered_data_to_keep_the_order():
    server, protocol, peer = open_protocol()
    protocol.transport.write(b"reply-first ")  # an earlier reply still in Twisted's buffer
    sender_for(server, protocol).send_prepared(PreparedFrame(b"broadcast"))
    await asyncio.sleep(0)
    assert buffered(protocol.transport) == b"reply-first broadcast"
    protocol.transport.stopWriting()


async def test_what_the_kernel_does_not_take_is_buffered():
    server, protocol, peer = open_protocol()
    big = bytes(range(256)) * 8_000  # 2 MB: more than a socket buffer holds, within the bound
    sender_for(server, protocol).send_prepared(PreparedFrame(big))
    await asyncio.sleep(0)
    rest = buffered(protocol.transport)
    assert 0 < len(rest) < len(big)
    assert big.endswith(rest)
    protocol.transport.stopWriting()


async def test_a_failing_socket_does_not_keep_frames_from_the_others():
    server, broken, _ = open_protocol()
    _, healthy, peer = open_protocol()

    def fail(data):
        raise OSError("boom")

    broken.transport.writeSomeData = fail
    sender_for(server, broken).send_prepared(PreparedFrame(b"lost"))
    sender_for(server, healthy).send_prepared(PreparedFrame(b"delivered"))
    await asyncio.sleep(0)
    assert peer.recv(100) == b"delivered"
    assert broken.direct_frames is None
    healthy.transport.stopWriting()


async def test_a_lost_connection_drops_its_queue():
    class Lost:
        def connectionLost(self, reason):  # noqa: N802 - Twisted's name
            self.reason = reason

    class Protocol(DirectFrames, Lost):
        pass

    protocol = Protocol()
    protocol.direct_frames = [b"never-sent"]
    protocol.connectionLost("gone")
    assert protocol.direct_frames is None and protocol.reason == "gone"
    protocol.flush_direct_frames()  # the end-of-pass flush finds nothing to write


def test_an_open_socket_without_a_queue_makes_one_for_a_synchronous_send():
    """An idle socket's empty Autobahn queue is dropped (wire.release_send_queue); a send that
    queues gets one of its own again, and Autobahn writes what it queued."""
    server, protocol, peer = open_protocol()
    protocol.triggered = True  # as if Autobahn's queue were being worked through already
    wire.release_send_queue(protocol)
    assert "send_queue" not in vars(protocol) and not protocol.send_queue
    assert wire.autobahn_queue_bytes(protocol) == 0
    wire.clear_autobahn_queue(protocol)  # a slow reader closed: nothing to forget, no error

    protocol.sendData(b"first", sync=True)
    assert isinstance(vars(protocol)["send_queue"], deque)
    assert wire.autobahn_queue_bytes(protocol) == 5  # queued behind the sends in progress
    protocol.triggered = False
    protocol._send()  # Autobahn's next turn of its queue
    assert wire.unsent_bytes(protocol.transport) == 5 and not protocol.send_queue
    protocol.transport.socket.close()
    peer.close()
