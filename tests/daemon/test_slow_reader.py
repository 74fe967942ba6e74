"""A socket that stops reading: what the daemon holds unsent for it is bounded in bytes.

These tests drive one real protocol over a socket pair whose peer never reads; the end-to-end
test with a real twistd is in test_slow_reader_daemon.py.
"""

import asyncio
import socket
import struct

from prometheus_client import REGISTRY

from chatserver.daemon import wire_internals as wire
from chatserver.daemon.direct_send import CLOSE_SLOW_READER

from .test_direct_send import open_protocol, sender_for

LIMIT = 256 * 1024


def stalled_protocol():
    server, protocol, peer = open_protocol()
    protocol.max_send_buffer = LIMIT
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return server, protocol, peer


def read_all(peer):
    """Everything the peer can read now, without waiting."""
    peer.setblocking(False)
    chunks = []
    while True:
        try:
            chunk = peer.recv(1 << 20)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def frames(data):
    """``[(opcode, payload)]`` of unmasked server frames; fails on a truncated frame."""
    out, at = [], 0
    while at < len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            (length,) = struct.unpack_from("!H", data, at)
            at += 2
        elif length == 127:
            (length,) = struct.unpack_from("!Q", data, at)
            at += 8
        assert at + length <= len(data), "truncated frame: the stream was cut mid-frame"
        out.append((opcode, data[at : at + length]))
        at += length
    return out


def drain(protocol, peer):
    """Let the transport write what the peer now reads, as the reactor would."""
    received = b""
    for _ in range(10_000):
        received += read_all(peer)
        if not wire.unsent_bytes(protocol.transport):
            break
        protocol.transport.doWrite()
    return received + read_all(peer)


def dropped_for_full_buffers():
    labels = {"reason": "buffer_full"}
    return REGISTRY.get_sample_value("chatserver_frames_dropped_total", labels) or 0


async def test_direct_frames_past_the_bound_close_the_socket_with_1013():
    dropped_before = dropped_for_full_buffers()
    server, protocol, peer = stalled_protocol()
    sender = sender_for(server, protocol)
    payloads = [b"%06d" % n + b"x" * 9_994 for n in range(200)]  # 2 MB in all
    sent = 0
    for payload in payloads:
        if protocol.state != protocol.STATE_OPEN:
            break
        sender.send_prepared(wire.prepare(sender.factory, payload))
        sent += 1
        await asyncio.sleep(0)
    assert protocol.state == protocol.STATE_CLOSING
    assert sent < len(payloads)
    # What it holds now is at most the rest of one frame and the close frame.
    assert wire.unsent_bytes(protocol.transport) < 10_010 + 4

    received = frames(drain(protocol, peer))
    assert received[-1] == (8, struct.pack("!H", CLOSE_SLOW_READER))
    texts = [payload for opcode, payload in received[:-1]]
    assert all(opcode == 1 for opcode, _ in received[:-1])
    assert texts == payloads[: len(texts)]  # a prefix, in order, none cut
    assert 0 < len(texts) < sent
    assert dropped_for_full_buffers() > dropped_before
    protocol.transport.stopWriting()


async def test_the_asgi_send_path_is_bounded_too():
    _, protocol, peer = stalled_protocol()
    protocol.trackedTimings = None
    protocol.send_state = protocol.SEND_STATE_GROUND
    payload = b"y" * 30_000
    for _ in range(100):
        if protocol.state != protocol.STATE_OPEN:
            break
        protocol.sendMessage(payload)  # what Daphne's handle_reply calls
    assert protocol.state == protocol.STATE_CLOSING
    assert wire.unsent_bytes(protocol.transport) < 30_010 + 4
    received = frames(drain(protocol, peer))
    assert received[-1] == (8, struct.pack("!H", CLOSE_SLOW_READER))
    assert all(frame == (1, payload) for frame in received[:-1])
    protocol.transport.stopWriting()


async def test_a_reader_that_keeps_up_is_never_closed():
    server, protocol, peer = stalled_protocol()
    sender = sender_for(server, protocol)
    received = b""
    for n in range(300):  # 3 MB in all, more than the bound, read as it comes
        sender.send_prepared(wire.prepare(sender.factory, b"%06d" % n + b"z" * 9_994))
        await asyncio.sleep(0)
        received += drain(protocol, peer)
    assert protocol.state == protocol.STATE_OPEN
    assert len(frames(received)) == 300
    protocol.transport.stopWriting()
