"""Daphne's HTTP/WebSocket server, running inside the twistd reactor.

Daphne's ``Server.run()`` would start its own reactor and silence Twisted's logging, so we never
call it: we build its factories, listen through Twisted endpoints as child services, and drive
its housekeeping ourselves. On stop, every WebSocket gets close code 1001, the application
instances get ``--drain`` seconds to run their disconnect handlers, and the channel layer's Redis
pools are closed.
"""

import asyncio
import inspect
import logging
import time
from functools import partial

from daphne.http_protocol import HTTPFactory
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.web.http import HTTPChannel

from chatserver.chat import runtime
from chatserver.chat.conf import option
from chatserver.chat.direct_sender import SCOPE_KEY as DIRECT_SENDER

from . import wire_internals as wire
from .admission import DEFAULT_MAX_HANDSHAKES, HandshakeAdmission
from .aio import as_deferred
from .application_reaping import ReapedApplications
from .direct_send import DirectFrames, DirectSender, EndOfPassWrites
from .listening import ListeningService

log = Logger()
access_log = logging.getLogger("chatserver.access")

GOING_AWAY = 1001
# The scope's "asgi" entry, shared by every connection (Daphne builds one dict per connection).
ASGI_VERSION = {"version": "3.0"}
PROXY_HEADERS = ("X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto")


def log_action(protocol, action, details):
    """Daphne's action logger: one INFO line per HTTP request, and per WebSocket connected,
    rejected and disconnected."""
    client = details.get("client") or "-"
    if protocol == "http" and action == "complete":
        access_log.info(
            '%s "%s %s" %s %s %.3fs',
            client,
            details["method"],
            details["path"],
            details["status"],
            details.get("size") or "-",
            details.get("time_taken", 0.0),
        )
    elif protocol == "websocket" and action != "connecting":
        # "connecting" is always followed by "connected" or "rejected" within the handshake
        # timeout: one line fewer per socket, which a reconnect storm's thousands notice.
        access_log.info("%s WebSocket %s %s", client, action, details.get("path"))


class ChatWebSocketProtocol(DirectFrames, WebSocketProtocol):
    """Daphne's WebSocket protocol, able to close with any valid code and to take room frames
    from a DirectSender (see direct_send.py).

    Autobahn's ``sendClose`` accepts only 1000 and 3000-4999, so an application closing with
    1009 (frame too big) or 1001 would raise inside Daphne and the client would see 1006.
    Daphne's ``handle_reply`` tests a message's payload for truthiness, so an empty text or
    binary message would never be sent; a send to a closing socket would raise; and an accept
    that comes after the handshake timed out would reopen a dropped connection.
    """

    admission = None  # the server's HandshakeAdmission, set on the per-server subclass

    def serverClose(self, code=None):  # noqa: N802 - Daphne's method name
        code = 1000 if code is None else code
        if code == 1000 or 3000 <= code <= 4999:
            self.sendClose(code=code)
        else:
            wire.close_frame(self, code)

    def handle_reply(self, message):
        if self.state == self.STATE_CLOSED and message.get("type") == "websocket.accept":
            # Autobahn dropped the connection while the application was still deciding (the
            # opening handshake timed out under load): accepting now would mark the protocol
            # open again and resolve its is_closed twice (AlreadyCalledError) when it is lost.
            return
        if message.get("type") != "websocket.send" or self.state == self.STATE_CONNECTING:
            super().handle_reply(message)  # accept, close, and Daphne's errors
            return
        data, text = message.get("bytes"), message.get("text")
        if data is not None and text is not None:
            raise ValueError("A websocket.send message carries either bytes or text, not both")
        if self.state != self.STATE_OPEN:
            return  # closing (e.g. as a slow reader): the client cannot get it any more
        if data is not None:
            self.serverSend(data, True)
        elif text is not None:
            self.serverSend(text, False)

    def dataReceived(self, data):  # noqa: N802 - Twisted's method name
        """Autobahn's, without its debug line: Autobahn formats that line's arguments (coloured
        by click, the method's name found by inspect) for every read, whether debug logging is
        on or not. Under load that was 3-4% of the daemon's time; the bytes go to the same
        parser."""
        self._dataReceived(data)

    def connectionMade(self):  # noqa: N802 - Twisted's method name
        release_upgraded_channel(self.transport)
        super().connectionMade()

    def onOpen(self):  # noqa: N802 - Autobahn's method name
        super().onOpen()
        self.admission.answered(self.transport)
        self.forget_handshake()

    def connectionLost(self, reason):  # noqa: N802 - Twisted's method name
        self.admission.answered(self.transport)
        super().connectionLost(reason)

    def forget_handshake(self):
        """Drop what only the opening handshake reads, once the application has accepted.

        Autobahn keeps the raw request and its parsed headers, Daphne the request and the
        cleaned header list (the ASGI scope's ``headers``): about 3 KiB per idle socket; and
        Autobahn's empty send queue (see wire_internals.release_send_queue). By
        now the middleware has authenticated the socket and checked its origin, and nothing
        reads the headers again; the scope's list is emptied rather than replaced, since the
        application holds it.
        """
        for name in HANDSHAKE_ATTRIBUTES:
            self.__dict__.pop(name, None)
        request = self.__dict__.get("request")
        if request is not None:  # Daphne logs the path of every later state change
            self.request = HandshakePath(request.path)
        headers = self.__dict__.get("clean_headers")
        if headers:
            headers.clear()
        wire.release_send_queue(self)


def release_upgraded_channel(transport):
    """Let go of the HTTP connection a WebSocket was upgraded from.

    Daphne hands the transport over to the WebSocket but leaves Twisted's ``HTTPChannel``
    registered as its producer, and the channel holds the upgrade request (headers, body
    buffer, parser state): about 3.5 KiB per idle socket. The channel never finished that
    request, so its pause, resume and stop do nothing (they act only between requests or on a
    response producer, which an upgrade has not): unregistering it changes no behaviour.
    """
    channel = getattr(transport, "producer", None)
    if (
        isinstance(channel, HTTPChannel)
        and channel._handlingRequest
        and channel._requestProducer is None
    ):
        transport.unregisterProducer()


# Autobahn's attributes read only while it parses the opening handshake.
HANDSHAKE_ATTRIBUTES = (
    "http_request_data",
    "http_status_line",
    "http_headers",
    "http_request_uri",
    "http_request_path",
    "http_request_params",
    "http_request_host",
    "websocket_origin",
)


class AdmittedChannel(HTTPChannel):
    """Twisted's HTTP connection, counted by admission control from a complete request to its
    answer.

    A connection that has sent nothing, or not all of its request, costs the daemon no work
    and is not counted: otherwise a few hundred idle connections would stop the daemon
    accepting (Twisted drops them after 60 s; nginx sends whole requests). A WebSocket upgrade
    hands the transport on to ChatWebSocketProtocol, which answers when it opens or is lost.
    Daphne's factory wraps each channel in Twisted's ALPN proxy, which only matters for HTTP/2
    over TLS, and HTTP/2 is not installed: the channel is served bare.
    """

    admission = None  # the server's HandshakeAdmission, set on the per-server subclass

    def allContentReceived(self):  # noqa: N802 - Twisted's method name
        self.admission.admit(self.transport)
        super().allContentReceived()

    def requestDone(self, request):  # noqa: N802 - Twisted's method name
        self.admission.answered(self.transport)
        super().requestDone(request)

    def connectionLost(self, reason):  # noqa: N802 - Twisted's method name
        self.admission.answered(self.transport)
        super().connectionLost(reason)


class ChatHTTPFactory(HTTPFactory):
    """Daphne's HTTP factory building AdmittedChannels."""

    def __init__(self, server, admission):
        super().__init__(server)
        self.protocol = type("AdmittedChannel", (AdmittedChannel,), {"admission": admission})


class HandshakePath:
    """The one part of Autobahn's ``ConnectionRequest`` that Daphne reads after the handshake."""

    __slots__ = ("path",)

    def __init__(self, path):
        self.path = path


class ApplicationQueue:
    """What Daphne puts in front of one application instance (``asyncio.Queue`` there).

    An ``asyncio.Queue`` carries three deques and a condition: about 1.7 KiB per idle socket
    for a queue that is empty nearly all the time and read by one consumer. This one holds a
    list only while something is queued and a future only while the consumer waits; as with
    ``asyncio.Queue``, a wake-up carries no item, so a getter cancelled after it was woken
    loses nothing.
    """

    __slots__ = ("_items", "_waiters")

    def __init__(self):
        self._items = None
        self._waiters = None

    def put_nowait(self, item):
        if self._items is None:
            self._items = [item]
        else:
            self._items.append(item)
        if self._waiters:
            self._wake_next()

    def qsize(self):
        return len(self._items) if self._items else 0

    def empty(self):
        return not self._items

    async def get(self):
        while not self._items:
            waiter = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = [waiter]
            else:
                self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if self._waiters and waiter in self._waiters:
                    self._waiters.remove(waiter)
                    if not self._waiters:
                        self._waiters = None
                if waiter.done() and not waiter.cancelled() and self._items:
                    self._wake_next()  # woken, then cancelled: pass the wake-up on
                raise
        items = self._items
        item = items.pop(0)
        if not items:
            self._items = None
        elif self._waiters:
            self._wake_next()
        return item

    def _wake_next(self):
        waiters = self._waiters
        while waiters:
            waiter = waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                break
        if not waiters:
            self._waiters = None


def _as_class_attribute(value):
    # A function stored on a class would become a method; options are plain values/callables.
    return staticmethod(value) if inspect.isfunction(value) else value


class EmbeddedServer(ReapedApplications, Server):
    """Daphne's Server with the parts of ``run()`` that do not start a reactor, its record of
    connections kept by event (application_reaping.py)."""

    def build_factories(self, admission):
        self.start_record()
        self.direct_writes = EndOfPassWrites()
        self.http_factory = ChatHTTPFactory(self, admission)
        # Twisted's own access log would repeat log_action's line for every request.
        self.http_factory.log = lambda request: None
        self.ws_factory = WebSocketFactory(self, server=self.server_name)
        self.ws_factory.setProtocolOptions(
            autoPingTimeout=self.ping_timeout,
            allowNullOrigin=True,
            openHandshakeTimeout=self.websocket_handshake_timeout,
            maxMessagePayloadSize=self.websocket_max_message_size,
            maxFramePayloadSize=self.websocket_max_frame_size,
            # On a protocol violation (e.g. a message over the size limit) finish the closing
            # handshake instead of dropping TCP at once: the client then reads code 1009 rather
            # than a reset that can swallow the close frame.
            failByDrop=False,
        )
        # Autobahn copies ~40 option attributes from the factory into every protocol instance
        # it finds lacking them; a protocol class carrying them saves that per connection.
        options = {
            name: _as_class_attribute(getattr(self.ws_factory, name))
            for name in wire.config_attributes(ChatWebSocketProtocol)
        }
        options["max_send_buffer"] = option("MAX_SEND_BUFFER_BYTES")
        options["admission"] = admission
        wire.lazy_config_dump()
        self.ws_factory.protocol = type("ChatWebSocketProtocol", (ChatWebSocketProtocol,), options)

    def create_application(self, protocol, scope):
        """Daphne's ``create_application`` with a lighter input queue and, for WebSockets, the
        direct sender in the scope's extensions."""
        if isinstance(protocol, WebSocketProtocol):
            extensions = dict(scope.get("extensions") or {})
            extensions[DIRECT_SENDER] = DirectSender(protocol, self.direct_writes)
            scope = dict(scope, extensions=extensions)
        assert "application_instance" not in self.connections.get(protocol, {})
        input_queue = ApplicationQueue()
        scope.setdefault("asgi", ASGI_VERSION)
        application_instance = self.application(
            scope=scope, receive=input_queue.get, send=partial(self.handle_reply, protocol)
        )
        if protocol not in self.connections:
            return None
        self.track(protocol, asyncio.ensure_future(application_instance))
        return input_queue

    def open_websockets(self):
        return [
            protocol
            for protocol in list(self.connections)
            if isinstance(protocol, WebSocketProtocol)
            and protocol.state == protocol.STATE_OPEN
            and "disconnected" not in self.connections.get(protocol, {})
        ]

    def busy_applications(self):
        """Application instances (consumers) that have not finished yet."""
        return [
            details["application_instance"]
            for details in list(self.connections.values())
            if "application_instance" in details and not details["application_instance"].done()
        ]


class DaphneService(service.MultiService):
    def __init__(
        self,
        application,
        endpoints,
        reactor,
        *,
        drain=10.0,
        max_message_size=1024 * 1024,
        websocket_timeout=-1,
        proxy_headers=False,
        channel_layer=None,
        max_handshakes=DEFAULT_MAX_HANDSHAKES,
    ):
        super().__init__()
        self.reactor = reactor
        self.drain = drain
        self.channel_layer = channel_layer
        header = (lambda name: name) if proxy_headers else (lambda name: None)
        self.server = EmbeddedServer(
            application,
            endpoints=list(endpoints),
            signal_handlers=False,
            action_logger=log_action,
            websocket_timeout=websocket_timeout,
            websocket_max_message_size=max_message_size,
            websocket_max_frame_size=max_message_size,
            proxy_forwarded_address_header=header(PROXY_HEADERS[0]),
            proxy_forwarded_port_header=header(PROXY_HEADERS[1]),
            proxy_forwarded_proto_header=header(PROXY_HEADERS[2]),
            server_name="chatserver",
        )
        self.admission = HandshakeAdmission(max_handshakes)
        self.server.build_factories(self.admission)
        self.listeners = []
        for description in endpoints:
            listener = ListeningService(
                reactor, description, self.server.http_factory, self.admission
            )
            listener.setServiceParent(self)
            self.listeners.append(listener)
        self._checkers_started = False

    def startService(self):
        # Channels and asgiref look the event loop up globally; make it the reactor's.
        asyncio.set_event_loop(self.reactor._asyncioEventloop)
        runtime.start(self.reactor._asyncioEventloop)
        super().startService()
        # Daphne's housekeeping (consumers outliving their connection, pings, timeouts) reschedules
        # itself on the reactor, as under `daphne`; it stops with the reactor.
        if not self._checkers_started:
            self._checkers_started = True
            self.reactor.callLater(1, self.server.application_checker)
            self.reactor.callLater(2, self.server.timeout_checker)

    def connection_count(self):
        return len(self.server.open_websockets())

    @defer.inlineCallbacks
    def stopService(self):
        # 1. Stop accepting: close the listening sockets (the Unix socket file goes with them).
        yield defer.DeferredList([defer.maybeDeferred(s.stopService) for s in self.listeners])
        service.Service.stopService(self)
        # 2. Tell every WebSocket we are going away. sendClose() refuses 1001, so send the frame.
        sockets = self.server.open_websockets()
        for protocol in sockets:
            try:
                protocol.sendCloseFrame(code=GOING_AWAY, isReply=False)
            except Exception:
                log.failure("could not send close frame to {protocol}", protocol=protocol)
        if sockets:
            log.info("sent 1001 to {n} WebSocket(s); draining", n=len(sockets))
        # 3. Wait for consumers' disconnect handlers, at most `drain` seconds.
        deadline = time.monotonic() + self.drain
        while self.server.busy_applications() and time.monotonic() < deadline:
            yield task.deferLater(self.reactor, 0.05, lambda: None)
        leftovers = self.server.busy_applications()
        if leftovers:
            log.warn("cancelling {n} application(s) still running after drain", n=len(leftovers))
            for instance in leftovers:
                instance.cancel()
            yield as_deferred(asyncio.gather(*leftovers, return_exceptions=True))
        # 4. The chat runtime leaves the layer's groups and closes the event loop's database
        #    connection (stored messages' batches are done); then the layer's connections go.
        yield as_deferred(runtime.stop()).addErrback(
            lambda failure: log.failure("stopping the chat runtime failed", failure)
        )
        yield close_channel_layer(self.channel_layer)


async def _close_layer(layer):
    if hasattr(layer, "close_pools"):  # channels_redis.core.RedisChannelLayer
        await layer.close_pools()
    elif hasattr(layer, "_shards"):  # channels_redis.pubsub.RedisPubSubChannelLayer
        await layer.flush()


def close_channel_layer(layer):
    if layer is None:
        return defer.succeed(None)
    d = as_deferred(_close_layer(layer))
    d.addErrback(lambda failure: log.failure("closing the channel layer failed", failure))
    return d
