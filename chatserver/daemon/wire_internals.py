"""The private parts of Twisted, Autobahn and Daphne that the daemon's socket writes rely on.

The daemon writes room frames to sockets itself (direct_send.py) and bounds what a socket may
hold unsent (a client that stops reading). Neither has a public API in the libraries, so every
private attribute we read or set lives here, and ``tests/daemon/test_wire_internals.py`` checks
each one on real instances of the real classes: an upgrade that renames one fails that test with
the attribute and the package version, not the daemon at run time.

Twisted (``twisted.internet.tcp.Connection``, via ``abstract.FileDescriptor``):
    ``dataBuffer`` / ``offset``
        the bytes being written and how many of them the kernel took; read to count what a
        socket holds unsent, replaced to drop it.
    ``_tempDataBuffer`` / ``_tempDataLen``
        writes since the last ``doWrite``, not yet joined into ``dataBuffer``; same reasons.
    ``writeSomeData(data)``
        one ``send`` system call without registering for writability: a frame written to an
        idle socket costs no selector updates (see direct_send.write_soon).
    ``connected`` / ``disconnecting``
        public-looking but undocumented: whether a direct write may happen at all.

Autobahn (``autobahn.websocket.protocol.WebSocketProtocol`` and its factory):
    ``_perMessageCompress``
        the negotiated permessage-deflate, or None: prepared frames are only valid uncompressed.
    ``send_queue``
        Autobahn's own queue of chopped/synchronous sends: a direct write must not overtake it,
        and its bytes count as unsent. An open socket's empty one is dropped (the class's empty
        tuple reads in its place) and made again before a send that would queue.
    ``factory.prepareMessage`` / ``PreparedMessage.payloadHybi`` / ``.doNotCompress``
        a frame encoded once for every member of a room; ``payloadHybi`` is its bytes on the
        wire (server frames are not masked).
    ``sendPreparedMessage``
        the per-connection path for a prepared frame when compression is on.
    ``CONFIG_ATTRS``
        the option names the protocol copies from its factory in every ``connectionMade``;
        the daemon puts them on its protocol class once instead.
    ``sendCloseFrame(code, isReply)``
        the only way to close with a code ``sendClose`` refuses (1001, 1009, 1013).
    ``autobahn.websocket.protocol.pformat``
        the module's name for ``pprint.pformat``, which ``_connectionMade`` calls on every
        connection for a debug line that is almost never written; replaced by a lazy one.

Daphne (``daphne.ws_protocol.WebSocketProtocol``):
    ``handle_reply(message)``
        the ASGI ``websocket.*`` messages of the application; overridden to send empty
        messages (Daphne tests the payload for truthiness) and to drop sends on a closing socket.
    ``serverSend(content, binary)`` / ``serverClose(code)``
        what ``handle_reply`` calls; ``serverClose`` is overridden for any valid close code.
"""

import pprint
from collections import deque

from autobahn.websocket import protocol as autobahn_protocol
from twisted.internet import tcp

# What the test checks on real instances: {package: {what: (attribute, ...)}}.
USED = {
    "twisted": {
        "twisted.internet.tcp.Connection": (
            "dataBuffer",
            "offset",
            "_tempDataBuffer",
            "_tempDataLen",
            "writeSomeData",
            "connected",
            "disconnecting",
        ),
    },
    "autobahn": {
        "autobahn WebSocketServerProtocol (connected)": (
            "_perMessageCompress",
            "send_queue",
            "sendPreparedMessage",
            "sendCloseFrame",
            "sendData",
            "state",
            "STATE_OPEN",
            "CONFIG_ATTRS",
        ),
        "autobahn WebSocketServerFactory": ("prepareMessage",),
        "autobahn PreparedMessage": ("payloadHybi", "doNotCompress"),
    },
    "daphne": {
        "daphne.ws_protocol.WebSocketProtocol": ("handle_reply", "serverSend", "serverClose"),
    },
}


# -- Twisted: what a socket holds unsent -------------------------------------------------


def unsent_bytes(transport):
    """Bytes written to a socket transport that the kernel has not taken yet."""
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


def counts_unsent(transport):
    """A socket transport whose buffer we can read (TCP and Unix sockets; not TLS wrappers)."""
    return isinstance(transport, tcp.Connection)


def write_if_idle(protocol, data):
    """One ``send`` of ``data`` when nothing waits before it (Autobahn's queue and the
    transport's buffer are empty, so the order holds): the byte count the kernel took; 0 when
    something waits or the transport is not a plain socket (TLS wrappers); None when the
    connection is lost. The fan-out path runs this once per member socket and loop pass."""
    transport = protocol.transport
    if (
        protocol.send_queue
        or not isinstance(transport, tcp.Connection)  # TCP and Unix sockets; not TLS wrappers
        or not transport.connected
        or transport.disconnecting
        or transport._tempDataLen
        or len(transport.dataBuffer) != transport.offset
    ):
        return 0
    written = transport.writeSomeData(data)
    return written if isinstance(written, int) else None


def unsent_head(transport, length):
    """The first ``length`` unsent bytes (the rest of a frame the kernel took in part)."""
    head = bytes(memoryview(transport.dataBuffer)[transport.offset :][:length])
    for chunk in transport._tempDataBuffer:
        if len(head) >= length:
            break
        head += chunk[: length - len(head)]
    return head


def replace_unsent(transport, data):
    """Forget everything the transport holds unsent and leave ``data`` to be sent instead."""
    transport.dataBuffer = data
    transport.offset = 0
    transport._tempDataBuffer = []
    transport._tempDataLen = 0


# -- Autobahn: prepared frames and its own queue -----------------------------------------


# What an open socket's ``send_queue`` reads as while it has none of its own (a class attribute).
NO_SEND_QUEUE = ()


def release_send_queue(protocol):
    """Drop an open socket's empty queue: a deque is 760 bytes, held by every idle socket for
    sends that queue only when chopped or synchronous, which nothing here asks for."""
    if "send_queue" in protocol.__dict__ and not protocol.send_queue:
        del protocol.send_queue


def own_send_queue(protocol, sync, chopsize):
    """Before a send that Autobahn queues (chopped or synchronous): a queue of its own again."""
    if (sync or chopsize) and "send_queue" not in protocol.__dict__:
        protocol.send_queue = deque()


def autobahn_queue_bytes(protocol):
    """Bytes in Autobahn's own queue of chopped/synchronous sends (empty unless used)."""
    queue = getattr(protocol, "send_queue", None)
    return sum(len(data) for data, _ in queue) if queue else 0


def clear_autobahn_queue(protocol):
    """Forget Autobahn's queued sends (a socket closed as a slow reader)."""
    if protocol.send_queue:
        protocol.send_queue.clear()


class Frame:
    """A frame encoded once, to be written to many sockets: Autobahn's prepared message, and
    its bytes on the wire (``data``) read once here instead of once per socket."""

    __slots__ = ("message", "data")

    def __init__(self, message):
        self.message = message
        self.data = message.payloadHybi


def prepare(factory, payload, binary=False):
    """A ``Frame`` encoded once, to be written to many sockets."""
    return Frame(factory.prepareMessage(payload, isBinary=binary))


def compresses(protocol):
    """Whether this socket negotiated permessage-deflate: prepared bytes won't do, it compresses
    each frame itself. Fixed once the socket is open."""
    return protocol._perMessageCompress is not None


def compressed_per_socket(protocol, frame):
    """Whether this socket must compress the prepared frame itself (its bytes won't do)."""
    return compresses(protocol) and not frame.message.doNotCompress


def wire_bytes(frame):
    """The prepared frame's bytes on the wire, uncompressed."""
    return frame.data


def send_compressed(protocol, frame):
    protocol.sendPreparedMessage(frame.message)


def config_attributes(protocol_class):
    """The option names Autobahn copies from the factory into each protocol instance."""
    return protocol_class.CONFIG_ATTRS


class _LazyFormat:
    """``pprint.pformat(value)``, computed only if a log line that names it is written."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __str__(self):
        return pprint.pformat(self.value)

    def __format__(self, spec):
        return format(str(self), spec)


def lazy_config_dump():
    """Autobahn pretty-prints its ~40 options in every connection's ``_connectionMade`` for a
    debug line: a quarter of the daemon's handshake CPU in a py-spy profile of 2,000 connects.
    The line, when debug logging is on, reads the same."""
    autobahn_protocol.pformat = _LazyFormat


def close_frame(protocol, code):
    """Send a close frame with any valid code (``sendClose`` refuses 1001, 1009, 1013...)."""
    protocol.sendCloseFrame(code=code, isReply=False)
