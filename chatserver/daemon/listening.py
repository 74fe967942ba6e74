"""A service that listens on one Twisted endpoint while it runs.

A daemon that cannot listen on every address it was given must not look healthy to its
supervisor: it logs one line saying why and exits with status 1 (see exit_status.py). A Unix
socket that systemd passed in (socket_activation.py) is adopted instead of bound.
"""

import os
import stat

from twisted.application import service
from twisted.internet import defer
from twisted.internet.endpoints import UNIXServerEndpoint, serverFromString
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from .exit_status import stop_with_status
from .socket_activation import InheritedUNIXPort, take_inherited_socket

log = Logger()


class ListeningService(service.Service):
    """Listen on one endpoint description while running; log the address actually bound."""

    def __init__(self, reactor, description, factory, admission=None):
        self.reactor = reactor
        self.description = description
        self.factory = factory
        self.admission = admission  # pauses the port while too many requests await answers
        self.port = None
        self._waiting = []

    def startService(self):
        super().startService()
        listening = defer.maybeDeferred(self._listen)
        listening.addCallback(self._listening)
        listening.addErrback(self._failed)

    def _listen(self):
        endpoint = serverFromString(self.reactor, self.description)
        if not isinstance(endpoint, UNIXServerEndpoint):
            return endpoint.listen(self.factory)
        path = endpoint._address  # the path as parsed from the description
        inherited = take_inherited_socket(path)
        if inherited is not None:
            return InheritedUNIXPort.adopt(self.reactor, inherited, self.factory, endpoint._backlog)
        check_socket_path(path)
        return endpoint.listen(self.factory)

    def _listening(self, port):
        self.port = port
        if self.admission is not None:
            self.admission.add_port(port)
        log.info(
            "{name} listening on {address}{origin}",
            name=self.name or "chat",
            address=describe_address(port.getHost()),
            origin=" (socket passed by systemd)" if isinstance(port, InheritedUNIXPort) else "",
        )
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(port)
        return port

    def _failed(self, failure):
        log.critical(
            "cannot listen on {description}: {error}; exiting",
            description=self.description,
            error=listen_error_message(failure.value),
        )
        stop_with_status(self.reactor, 1)

    def when_listening(self):
        """A Deferred that fires with the port once this service listens."""
        if self.port is not None:
            return defer.succeed(self.port)
        d = defer.Deferred()
        self._waiting.append(d)
        return d

    def stopService(self):
        super().stopService()
        port, self.port = self.port, None
        if port is not None:
            if self.admission is not None:
                self.admission.remove_port(port)
            return defer.maybeDeferred(port.stopListening)
        return None


class UnusableSocketPath(Exception):
    """A Unix socket path that cannot be bound, said in words (not errno's)."""


def check_socket_path(path):
    """Refuse a missing directory, and a file that is not a socket (a typo must not replace it)."""
    path = os.fsdecode(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UnusableSocketPath(f"directory {directory} does not exist")
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not stat.S_ISSOCK(mode):
        raise UnusableSocketPath(f"{path} exists and is not a socket")


def listen_error_message(error):
    """One line: the OS error behind Twisted's CannotListenError, without its repr noise."""
    if isinstance(error, CannotListenError):
        error = error.socketError
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)


def describe_address(address):
    if hasattr(address, "port"):
        return f"http://{address.host}:{address.port}/ (tcp)"
    name = getattr(address, "name", address)
    if isinstance(name, bytes):
        name = name.decode()
    return f"unix:{name}"
