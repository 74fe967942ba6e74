"""An SSH manhole: a live Python shell inside the running daemon, for operators.

Public-key authentication only, against one authorized_keys file (re-read on every login, so
revoking a key needs no restart). There are no passwords and no built-in keys; the host key is
generated on first start into the state directory. TCP listeners must be on loopback unless the
operator forces otherwise; Unix sockets default to mode 600.
"""

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch import manhole, manhole_ssh
from twisted.conch.checkers import IAuthorizedKeysDB, SSHPublicKeyChecker, readAuthorizedKeyFile
from twisted.conch.insults import insults
from twisted.conch.ssh import keys
from twisted.cred import portal
from twisted.logger import Logger
from twisted.python import usage
from zope.interface import implementer

from .endpoints import is_loopback_endpoint, parse_endpoint

log = Logger()

HOST_KEY_NAME = "manhole_host_key"


@implementer(IAuthorizedKeysDB)
class AuthorizedKeysFile:
    """Every user name maps to the keys of one authorized_keys file."""

    def __init__(self, path):
        self.path = Path(path)

    def getAuthorizedKeys(self, username):  # noqa: N802 - Twisted interface name
        try:
            with self.path.open("rb") as handle:
                return list(readAuthorizedKeyFile(handle))
        except OSError as error:
            log.error("manhole: cannot read {path}: {error}", path=self.path, error=error)
            return []


def load_or_create_host_key(state_dir):
    """The manhole's SSH host key, generated (ed25519, mode 600) on first start."""
    path = Path(state_dir) / HOST_KEY_NAME
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = keys.Key(ed25519.Ed25519PrivateKey.generate())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.toString("OPENSSH"))
        log.info("manhole: generated host key {path}", path=path)
    return keys.Key.fromFile(str(path))


def check_manhole_endpoint(description, allow_remote=False):
    """Refuse a manhole endpoint that is reachable from other hosts; return the final string.

    Accepted: ``unix:PATH`` (mode 600 unless given) and ``tcp:PORT:interface=ADDR`` with a loopback
    ADDR. A TCP endpoint without an interface listens on every address, so it is refused too.
    """
    kind = parse_endpoint(description)[0]
    if kind == "unix":
        if "mode=" not in description.partition(":")[2]:
            description += ":mode=600"
        return description
    if kind not in ("tcp", "tcp6"):
        raise usage.UsageError(
            f"--manhole {description!r}: use unix:PATH or tcp:PORT:interface=127.0.0.1."
        )
    if not allow_remote and not is_loopback_endpoint(description):
        raise usage.UsageError(
            f"--manhole {description!r} is not bound to a loopback interface; add "
            "interface=127.0.0.1 (or ::1), or pass --manhole-allow-remote if you mean it."
        )
    return description


class OperatorSession(manhole_ssh.TerminalSession):
    """Twisted's terminal session, minus the tracebacks on a client's EOF or window resize."""

    def eofReceived(self):  # noqa: N802 - Twisted interface name
        """The client closed its input; the channel close that follows ends the shell."""

    def windowChanged(self, newWindowSize):  # noqa: N802
        """The manhole draws line by line; a new window size needs no action."""


def manhole_factory(namespace, authorized_keys, host_key):
    """An SSH server factory giving each authenticated operator a manhole on ``namespace``."""
    realm = manhole_ssh.TerminalRealm()
    realm.sessionFactory = OperatorSession
    realm.chainedProtocolFactory = lambda: insults.ServerProtocol(manhole.ColoredManhole, namespace)
    checker = SSHPublicKeyChecker(AuthorizedKeysFile(authorized_keys))
    factory = manhole_ssh.ConchFactory(portal.Portal(realm, [checker]))
    factory.publicKeys = {host_key.sshType(): host_key.public()}
    factory.privateKeys = {host_key.sshType(): host_key}
    return factory
