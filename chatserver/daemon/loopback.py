"""Keep an operator-only listener (metrics) off the network unless the operator insists."""

import ipaddress
import re

from twisted.python import usage


def tcp_interface(description):
    """The ``interface=`` of a ``tcp:``/``tcp6:`` endpoint string, unescaped ('' if absent)."""
    _, _, rest = description.partition(":")
    parts = re.split(r"(?<!\\):", rest)  # endpoint strings escape colons as \:
    params = dict(part.split("=", 1) for part in parts if "=" in part)
    return params.get("interface", "").replace("\\:", ":")


def is_loopback(address):
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def operator_endpoint(option, value, allow_remote=False):
    """The endpoint string for an operator listener given as ``--OPTION value``.

    A bare port number means ``tcp:PORT:interface=127.0.0.1``; ``unix:PATH`` gets mode 660
    unless it names one; a TCP endpoint must name a loopback interface (without one it listens
    on every address) unless ``allow_remote``; any other kind is refused unless
    ``allow_remote``.
    """
    value = value.strip()
    if value.isdigit():
        port = int(value)
        if not 0 < port <= 65535:
            raise usage.UsageError(f"--{option} {value} is not a TCP port number.")
        return f"tcp:{port}:interface=127.0.0.1"
    kind = value.partition(":")[0].lower()
    if kind == "unix":
        return value if "mode=" in value else value + ":mode=660"
    if allow_remote:
        return value
    if kind not in ("tcp", "tcp6"):
        raise usage.UsageError(
            f"--{option} {value!r}: use a port number, tcp:PORT:interface=127.0.0.1 or "
            f"unix:PATH, or pass --{option}-allow-remote if you mean it."
        )
    if not is_loopback(tcp_interface(value)):
        raise usage.UsageError(
            f"--{option} {value!r} is not bound to a loopback interface; add "
            f"interface=127.0.0.1 (or ::1), or pass --{option}-allow-remote if you mean it."
        )
    return value
