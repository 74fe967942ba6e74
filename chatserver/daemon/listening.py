"""A service that listens on one Twisted endpoint while it runs."""

from twisted.application import service
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

log = Logger()


class ListeningService(service.Service):
    """Listen on one endpoint description while running; log the address actually bound."""

    def __init__(self, reactor, description, factory):
        self.reactor = reactor
        self.description = description
        self.factory = factory
        self.port = None

    def startService(self):
        super().startService()
        endpoint = serverFromString(self.reactor, self.description)
        listening = endpoint.listen(self.factory)
        listening.addCallback(self._listening)
        listening.addErrback(self._failed)

    def _listening(self, port):
        self.port = port
        log.info(
            "{name} listening on {address}",
            name=self.name or "chat",
            address=describe_address(port.getHost()),
        )
        return port

    def _failed(self, failure):
        log.critical(
            "cannot listen on {description}: {error}",
            description=self.description,
            error=failure.getErrorMessage(),
        )
        # A daemon that cannot listen must not look healthy to its supervisor.
        if self.reactor.running:
            self.reactor.stop()

    def stopService(self):
        super().stopService()
        port, self.port = self.port, None
        if port is not None:
            return defer.maybeDeferred(port.stopListening)
        return None


def describe_address(address):
    if hasattr(address, "port"):
        return f"http://{address.host}:{address.port}/ (tcp)"
    name = getattr(address, "name", address)
    if isinstance(name, bytes):
        name = name.decode()
    return f"unix:{name}"
