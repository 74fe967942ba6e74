"""Reading Twisted endpoint descriptions: which ones other hosts can reach."""

import ipaddress
import re

from twisted.python import usage

LOCAL_KINDS = ("unix",)
NETWORK_KINDS = ("tcp", "tcp6", "ssl")


def parse_endpoint(description):
    """``(kind, positional args, keyword params)`` of an endpoint description, unescaped."""
    kind, _, rest = description.partition(":")
    args, params = [], {}
    for part in re.split(r"(?<!\\):", rest) if rest else []:  # descriptions escape ':' as '\:'
        part = part.replace("\\:", ":")
        if "=" in part:
            name, value = part.split("=", 1)
            params[name] = value
        else:
            args.append(part)
    return kind.lower(), args, params


def is_loopback_endpoint(description):
    """Whether only this host can connect: a Unix socket, or TCP bound to a loopback address.

    A TCP endpoint without ``interface=`` listens on every address; any other kind (a systemd
    socket, a plugin's) is taken as reachable, since we cannot tell.
    """
    kind, _, params = parse_endpoint(description)
    if kind in LOCAL_KINDS:
        return True
    if kind not in NETWORK_KINDS:
        return False
    interface = params.get("interface", "").strip("[]")
    if interface == "localhost":
        return True
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return False


def operator_endpoint(option, value, allow_remote=False):
    """The endpoint string for an operator-only listener given as ``--OPTION value``.

    A bare port number means ``tcp:PORT:interface=127.0.0.1``; ``unix:PATH`` gets mode 660
    unless it names one; anything another host could reach (a TCP endpoint without a loopback
    ``interface=``, any other kind) is refused unless ``allow_remote``.
    """
    value = value.strip()
    if value.isascii() and value.isdigit():
        port = int(value)
        if not 0 < port <= 65535:
            raise usage.UsageError(f"--{option} {value} is not a TCP port number.")
        return f"tcp:{port}:interface=127.0.0.1"
    kind = parse_endpoint(value)[0]
    if kind == "unix":
        return value if "mode=" in value else value + ":mode=660"
    if allow_remote or is_loopback_endpoint(value):
        return value
    if kind not in ("tcp", "tcp6"):
        raise usage.UsageError(
            f"--{option} {value!r}: use a port number, tcp:PORT:interface=127.0.0.1 or "
            f"unix:PATH, or pass --{option}-allow-remote if you mean it."
        )
    raise usage.UsageError(
        f"--{option} {value!r} is not bound to a loopback interface; add "
        f"interface=127.0.0.1 (or ::1), or pass --{option}-allow-remote if you mean it."
    )
