"""The contract between a server and the chat application for writing frames straight to a
WebSocket, bypassing the ASGI send path.

A server that can (the daemon: daemon/direct_send.py) puts an object meeting ``DirectSender``
into each WebSocket scope's ``extensions`` under ``SCOPE_KEY``. The chat side (the consumer's
replies, the local groups' room frames, the echo consumer) uses it while ``is_open()``, and the
ordinary ASGI send otherwise, or under a server that offers none. This module imports nothing,
so both sides import it.
"""

from typing import Protocol, runtime_checkable

SCOPE_KEY = "chatserver.direct_sender"  # in the ASGI scope's "extensions"


@runtime_checkable
class DirectSender(Protocol):
    """Writes frames to one WebSocket. Frames given in one pass of the event loop may be
    joined into one write; the order of the calls is the order on the wire."""

    #: Sockets whose senders share it take the same prepared frames (a room frame is prepared
    #: once per factory, then written to every local member).
    factory: object

    def is_open(self) -> bool:
        """Whether the socket is open: a frame given now would be written."""

    def prepare(self, text: str) -> object:
        """A text frame encoded once, for ``send_prepared`` on senders of the same factory."""

    def send_prepared(self, prepared: object) -> None:
        """Write a frame from ``prepare``."""

    def send_text(self, text: str) -> None:
        """Write one text frame for this socket alone."""

    def send_bytes(self, data: bytes) -> None:
        """Write one binary frame for this socket alone."""


def direct_sender_of(scope):
    """The scope's DirectSender, or None when the server offers none."""
    return scope.get("extensions", {}).get(SCOPE_KEY)
