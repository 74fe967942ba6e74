"""Room frames written straight to WebSockets, several per socket in one write.

The daemon offers every WebSocket application a ``DirectSender`` (the
``chatserver.direct_sender`` scope extension): the chat application prepares a broadcast frame
once and hands the same bytes to every local member, and writes its replies, bypassing the ASGI
send path.

A busy room makes the write system call the main cost of a broadcast: one ``send`` per member
per message. Frames given to a socket during one pass of the event loop are therefore queued on
the protocol and written together when the pass ends: with ten messages stored in one batch,
each member gets one write of ten frames. Anything else Autobahn writes to the socket (an ASGI
reply, a ping, a close frame) goes through ``sendData``, which writes the queued frames first,
so the order a client sees is the order the application sent in.

A client that stops reading must not make the daemon hold everything sent to it: what one socket
holds unsent (Twisted's buffer and Autobahn's queue, whichever path wrote it) is bounded by
``MAX_SEND_BUFFER_BYTES``. Past it the unsent frames are dropped, their memory returned, and the
socket is closed with 1013 (try again later): the client reconnects and resumes by ``seq``. The
kernel may already have part of a frame, so the rest of that frame is kept and the close frame
follows it, and the stream stays valid.
"""

import asyncio

from twisted.logger import Logger

from chatserver.chat.operations.metrics import frames_dropped
from chatserver.chat.protocol import CLOSE_SLOW_READER

from . import wire_internals as wire

log = Logger()


class DirectSender:
    """Writes prepared frames to one WebSocket protocol (a ``DirectFrames`` one)."""

    __slots__ = ("protocol", "factory", "writes", "compresses")

    def __init__(self, protocol, writes):
        self.protocol = protocol
        self.factory = protocol.factory
        self.writes = writes
        self.compresses = None  # known once the socket is open (negotiated in the handshake)

    def is_open(self):
        return getattr(self.protocol, "state", None) == self.protocol.STATE_OPEN

    def prepare(self, text):
        return wire.prepare(self.factory, text.encode("utf-8"))

    def send_text(self, text):
        """One frame for this socket alone (a reply), queued with its room frames."""
        self.send_prepared(self.prepare(text))

    def send_bytes(self, data):
        """One binary frame for this socket alone."""
        self.send_prepared(wire.prepare(self.factory, data, binary=True))

    def send_prepared(self, frame):
        """Queue a ``wire.Frame`` for the end of this loop pass; the caller checked is_open().
        Runs once per member socket of every room frame: attribute reads, no calls."""
        protocol = self.protocol
        compresses = self.compresses
        if compresses is None:
            compresses = self.compresses = wire.compresses(protocol)
        if compresses and wire.compressed_per_socket(protocol, frame):
            wire.send_compressed(protocol, frame)  # compressed per connection by Autobahn
            return
        queued = protocol.direct_frames
        if queued is None:
            protocol.direct_frames = [frame.data]
            self.writes.flush_later(protocol)
        else:
            queued.append(frame.data)


class EndOfPassWrites:
    """Flushes the protocols that queued frames during this pass of the event loop.

    One per server: the flush is a ``call_soon`` on the running loop, so it runs after the
    callbacks already due (the other answers of a stored batch) and before the loop polls again.
    """

    def __init__(self):
        self._protocols = []

    def flush_later(self, protocol):
        if not self._protocols:
            asyncio.get_running_loop().call_soon(self.flush)
        self._protocols.append(protocol)

    def flush(self):
        protocols, self._protocols = self._protocols, []
        for protocol in protocols:
            try:
                protocol.flush_direct_frames()
            except Exception:
                peer = getattr(protocol, "peer", "?")
                log.failure("writing queued frames to {peer} failed", peer=peer)


class DirectFrames:
    """Mixin for Autobahn's WebSocket protocol: the queue ``DirectSender`` fills, and the bound
    on what the socket holds unsent."""

    direct_frames = None  # bytes queued for the end of this loop pass, or None
    max_send_buffer = 4 * 1024 * 1024  # MAX_SEND_BUFFER_BYTES, set on the class by the server
    # Frame boundaries in what was left to the transport's buffer, counted in bytes left there
    # since the connection opened: ``_handed`` in all, ``_frame_ends`` at the end of each write
    # not yet sent, ``_last_end`` the last one the kernel took in full (None: mid-frame).
    _handed = 0
    _frame_ends = None
    _last_end = 0
    _closed_as_slow = False
    send_queue = wire.NO_SEND_QUEUE  # an open socket's own queue is dropped while empty

    def flush_direct_frames(self):
        frames = self.direct_frames
        if not frames:
            return
        self.direct_frames = None
        if self.state != self.STATE_OPEN:  # closed meanwhile (e.g. as a slow reader)
            frames_dropped(len(frames), "closed")
            return
        write_soon(self, frames[0] if len(frames) == 1 else b"".join(frames))

    def sendData(self, data, sync=False, chopsize=None):  # noqa: N802 - Autobahn's name
        if self.direct_frames:
            self.flush_direct_frames()  # queued frames were sent first
        wire.own_send_queue(self, sync, chopsize)
        transport = self.transport
        if not wire.counts_unsent(transport):
            super().sendData(data, sync, chopsize)
            return
        before = wire.unsent_bytes(transport)
        super().sendData(data, sync, chopsize)
        self.left_unsent(wire.unsent_bytes(transport) - before)

    def left_unsent(self, count, mid_frame=False):
        """``count`` bytes, ending a frame, went to the transport's buffer: keep the boundary,
        and close the socket when what it holds unsent passes ``max_send_buffer``."""
        if count <= 0 or self._closed_as_slow:
            return
        ends = self._frame_ends
        if ends is None:
            ends = self._frame_ends = []  # a short list: a deque's block is 760 bytes
        if mid_frame:  # the kernel took the start of this frame; everything before is sent
            ends.clear()
            self._last_end = None
        self._handed += count
        ends.append(self._handed)
        unsent = wire.unsent_bytes(self.transport)
        if unsent + wire.autobahn_queue_bytes(self) > self.max_send_buffer:
            self.close_slow_reader(unsent)
            return
        self._forget_sent(ends, self._handed - unsent)
        if not ends:
            self._frame_ends = None

    def _forget_sent(self, ends, sent):
        """Drop the frame ends the kernel has taken (those up to ``sent`` bytes)."""
        taken = 0
        while taken < len(ends) and ends[taken] <= sent:
            taken += 1
        if taken:
            self._last_end = ends[taken - 1]
            del ends[:taken]

    def close_slow_reader(self, unsent):
        """Drop what the socket holds unsent, keeping the rest of a frame the kernel has in
        part, and close it with 1013; without a usable boundary, or when that rest alone is
        over the bound, abort the connection."""
        self._closed_as_slow = True
        transport = self.transport
        sent = self._handed - unsent
        ends = self._frame_ends or []
        self._forget_sent(ends, sent)
        keep = 0 if self._last_end == sent else (ends[0] - sent if ends else -1)
        dropped = unsent - max(keep, 0)
        # Writes, not frames: a write joins the frames of one loop pass (close enough to count).
        frames_dropped(len(ends) - (keep > 0) + len(self.direct_frames or ()), "buffer_full")
        self.direct_frames = None
        self._frame_ends = None
        wire.clear_autobahn_queue(self)
        log.warn(
            "closing WebSocket {peer}: {unsent} bytes unsent, over MAX_SEND_BUFFER_BYTES "
            "({limit}); dropped {dropped} bytes",
            peer=getattr(self, "peer", "?"),
            unsent=unsent,
            limit=self.max_send_buffer,
            dropped=dropped,
        )
        if 0 <= keep <= min(unsent, self.max_send_buffer) and self.state == self.STATE_OPEN:
            wire.replace_unsent(transport, wire.unsent_head(transport, keep))
            wire.close_frame(self, CLOSE_SLOW_READER)  # Autobahn aborts if no reply comes
        else:
            wire.replace_unsent(transport, b"")
            transport.abortConnection()

    def connectionLost(self, reason):  # noqa: N802 - Twisted's name
        if self.direct_frames:  # queued in this loop pass, never to be written
            frames_dropped(len(self.direct_frames), "closed")
        self.direct_frames = None
        self._frame_ends = None
        super().connectionLost(reason)


def write_soon(protocol, data):
    """Write ``data`` to the socket now if nothing is waiting before it, else queue it.

    Twisted's ``transport.write`` registers the socket for writability and unregisters it after
    the write: two selector updates per call, measured as half of the daemon's fan-out time.
    Writing at once, as asyncio's transports do, leaves only what the kernel would not take to
    Twisted's buffer.
    """
    written = wire.write_if_idle(protocol, data)
    if written:  # else nothing was written: busy, or the connection is lost (write() finds out)
        if written == len(data):
            return
        data = data[written:]
    mid_frame = bool(written)
    transport = protocol.transport
    if not wire.counts_unsent(transport):
        transport.write(data)
        return
    before = wire.unsent_bytes(transport)
    transport.write(data)
    protocol.left_unsent(wire.unsent_bytes(transport) - before, mid_frame)
