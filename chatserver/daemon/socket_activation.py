"""Listening sockets passed in by systemd (socket activation: LISTEN_PID, LISTEN_FDS).

With ``chatserver.socket``, systemd binds /run/daphne/daphne.sock before the daemon starts and
keeps it open across restarts, so connections that arrive while one daemon stops and the next
starts wait in the kernel's backlog instead of being refused. The command line stays the same: a
``--socket`` path that names a passed descriptor (by ``getsockname()``) is adopted, not bound.

Twisted reads the descriptors: ``twisted.internet.endpoints`` parses LISTEN_PID/LISTEN_FDS into
``ListenFDs`` when it is imported (twistd's plugin scan imports it before our code runs) and
removes them from the environment; it needs LISTEN_FDNAMES too, which systemd sets since version
227. What Twisted lacks is the adoption: ``adoptStreamPort`` on a Unix socket chmods the file to
0666 on start, and on stop calls ``shutdown()`` on the socket it shares with systemd (every later
connect is refused) and unlinks the file; hence InheritedUNIXPort.
"""

import os
import socket

from twisted.internet import tcp, unix

_inherited = None  # path -> listening socket, read once from the environment


def inherited_unix_sockets(environ=None):
    """The Unix stream sockets systemd passed to this process, by path; read once.

    The LISTEN_* variables are removed afterwards (as ``sd_listen_fds(1)`` does), so no child
    process takes them for its own.
    """
    global _inherited
    if _inherited is None:
        _inherited = _read(os.environ if environ is None else environ)
    return _inherited


def take_inherited_socket(path):
    """The passed socket listening on ``path``, or None; each socket is handed out once."""
    return inherited_unix_sockets().pop(os.path.normpath(os.path.abspath(path)), None)


def _read(environ):
    from twisted.internet.endpoints import _SystemdParser  # reads and removes LISTEN_PID/FDS
    from twisted.python.systemd import ListenFDs

    descriptors = ListenFDs.fromEnvironment(environ).inheritedDescriptors()  # if still there
    descriptors = descriptors or _SystemdParser._sddaemon.inheritedDescriptors()
    environ.pop("LISTEN_FDNAMES", None)
    found = {}
    for fd in descriptors:
        try:
            sock = socket.socket(fileno=fd)  # takes the descriptor; family and type detected
        except OSError:
            continue
        name = sock.getsockname() if sock.family == socket.AF_UNIX else None
        if sock.type != socket.SOCK_STREAM or not isinstance(name, str) or not name:
            sock.detach()  # not ours to use, but not ours to close either
            continue
        sock.set_inheritable(False)
        sock.setblocking(False)
        found[os.path.normpath(name)] = sock
    return found


class InheritedUNIXPort(unix.Port):
    """A listening Unix socket owned by systemd: its file's mode, owner and life are systemd's.

    Stopping closes only our descriptor: no ``shutdown()`` (the socket is shared with systemd
    and the next daemon) and no unlink.
    """

    _shouldShutdown = False

    @classmethod
    def adopt(cls, reactor, sock, factory, backlog):
        port = cls(sock.getsockname(), factory, backlog, reactor=reactor)
        port._preexistingSocket = sock
        port.startListening()
        return port

    def startListening(self):
        # unix.Port.startListening without its lock file and chmod (SocketMode= decides).
        tcp._reservedFD.reserve()
        self.factory.doStart()
        skt, self._preexistingSocket = self._preexistingSocket, None
        skt.listen(self.backlog)
        self.connected = True
        self.socket = skt
        self.fileno = skt.fileno
        self.numberAccepts = 100
        self.startReading()

    def connectionLost(self, reason):
        tcp.Port.connectionLost(self, reason)  # skips unix.Port's unlink of the file
