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
"""

import asyncio

from twisted.internet import tcp
from twisted.logger import Logger

from chatserver.chat.metrics import frames_dropped

log = Logger()


class DirectSender:
    """Writes prepared frames to one WebSocket protocol (a ``DirectFrames`` one)."""

    __slots__ = ("protocol", "factory", "writes")

    def __init__(self, protocol, writes):
        self.protocol = protocol
        self.factory = protocol.factory
        self.writes = writes

    def is_open(self):
        return getattr(self.protocol, "state", None) == self.protocol.STATE_OPEN

    def prepare(self, text):
        return self.factory.prepareMessage(text.encode("utf-8"))

    def send_text(self, text):
        """One frame for this socket alone (a reply), queued with its room frames."""
        self.send_prepared(self.prepare(text))

    def send_prepared(self, prepared):
        protocol = self.protocol
        if protocol._perMessageCompress is not None and not prepared.doNotCompress:
            protocol.sendPreparedMessage(prepared)  # compressed per connection by Autobahn
            return
        queued = protocol.direct_frames
        if queued is None:
            protocol.direct_frames = [prepared.payloadHybi]
            self.writes.flush_later(protocol)
        else:
            queued.append(prepared.payloadHybi)


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
    """Mixin for Autobahn's WebSocket protocol: the queue ``DirectSender`` fills."""

    direct_frames = None  # bytes queued for the end of this loop pass, or None

    def flush_direct_frames(self):
        frames = self.direct_frames
        if not frames:
            return
        self.direct_frames = None
        write_soon(self, frames[0] if len(frames) == 1 else b"".join(frames))

    def sendData(self, data, sync=False, chopsize=None):  # noqa: N802 - Autobahn's name
        if self.direct_frames:
            self.flush_direct_frames()  # queued frames were sent first
        super().sendData(data, sync, chopsize)

    def connectionLost(self, reason):  # noqa: N802 - Twisted's name
        if self.direct_frames:  # queued in this loop pass, never to be written
            frames_dropped(len(self.direct_frames), "closed")
        self.direct_frames = None
        super().connectionLost(reason)


def write_soon(protocol, data):
    """Write ``data`` to the socket now if nothing is waiting before it, else queue it.

    Twisted's ``transport.write`` registers the socket for writability and unregisters it after
    the write: two selector updates per call, measured as half of the daemon's fan-out time.
    Writing at once, as asyncio's transports do, leaves only what the kernel would not take to
    Twisted's buffer.
    """
    transport = protocol.transport
    if not protocol.send_queue and _idle_socket_transport(transport):
        written = transport.writeSomeData(data)
        if isinstance(written, int):  # else the connection is lost: let write() find out
            if written == len(data):
                return
            data = data[written:]
    transport.write(data)


def _idle_socket_transport(transport):
    """A connected socket transport with nothing buffered, so a direct write keeps the order."""
    return (
        isinstance(transport, tcp.Connection)  # TCP and Unix sockets; not TLS wrappers
        and transport.connected
        and not transport.disconnecting
        and not getattr(transport, "_tempDataLen", 1)
        and len(transport.dataBuffer) == transport.offset
    )
