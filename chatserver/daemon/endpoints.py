"""Reading Twisted endpoint descriptions: which ones other hosts can reach."""

import ipaddress
import re

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
