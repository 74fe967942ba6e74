"""Command-line options of ``twistd chat``."""

import os

from twisted.python import usage

from .admission import DEFAULT_MAX_HANDSHAKES

DEVELOPMENT_SETTINGS = "chatserver.settings.development"
PRODUCTION_SETTINGS = "chatserver.settings.production"
# Twisted listens with a backlog of 50; after a restart every client reconnects at once, and
# connections past the backlog fail (nginx: "Resource temporarily unavailable", a 502). The
# kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 1024


def unix_endpoint(path):
    """A Unix-socket endpoint string: mode 660 (Twisted's default is 666) and a lock file so a
    stale socket left by a crash is removed on start."""
    escaped = path.replace("\\", "\\\\").replace(":", "\\:")
    return f"unix:{escaped}:mode=660:lockfile=1:backlog={LISTEN_BACKLOG}"


def tcp_endpoint(port, interface):
    escaped = interface.replace(":", "\\:")
    return f"tcp:{port}:interface={escaped}:backlog={LISTEN_BACKLOG}"


def positive(kind, description):
    """An option coercer accepting only positive values of ``kind`` (float or int)."""

    def coerce(value):
        number = kind(value)
        if number <= 0:
            raise ValueError("must be positive")
        return number

    coerce.coerceDoc = f"Must be a positive {description}."
    return coerce


positive_float = positive(float, "number")
positive_int = positive(int, "whole number")


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Serve the chatserver Django Channels application with Daphne inside this twistd "
        "process, with the heartbeat sweeper, the stale-session reaper and an optional SSH "
        "manhole. Without a listening option it serves http://127.0.0.1:8000/."
    )

    optFlags = [
        ["production", None, "Use chatserver.settings.production (everything from the env)."],
        ["no-migrate", None, "Do not apply database migrations at start."],
        ["proxy-headers", None, "Trust X-Forwarded-For/-Port/-Proto (behind nginx)."],
        ["manhole-allow-remote", None, "Allow the manhole on a non-loopback TCP interface."],
        [
            "i-know-this-is-development",
            None,
            "Serve the development settings (published key, DEBUG) beyond loopback anyway.",
        ],
        ["metrics-allow-remote", None, "Allow --metrics on a non-loopback interface."],
    ]

    optParameters = [
        ["socket", "s", None, "Listen on this Unix socket path (mode 660, stale socket removed)."],
        ["port", "p", None, "Listen on this TCP port.", int],
        ["interface", "i", "127.0.0.1", "TCP interface to bind with --port."],
        [
            "settings",
            None,
            None,
            "Django settings module (default: DJANGO_SETTINGS_MODULE or "
            "chatserver.settings.development).",
        ],
        [
            "state-dir",
            None,
            None,
            "Directory for the SQLite database and the manhole host key "
            "(default: CHATSERVER_STATE_DIR or ./var).",
        ],
        ["heartbeat-interval", None, 15.0, "Seconds between heartbeat sweeps.", positive_float],
        ["reap-interval", None, 3600.0, "Seconds between stale-session reaps.", positive_float],
        [
            "session-retention",
            None,
            None,
            "Hours a session row is kept after its last heartbeat "
            "(default: REALTIME_CHAT_MESSAGING['SESSION_RETENTION_HOURS'], 24).",
            positive_float,
        ],
        [
            "drain",
            None,
            10.0,
            "Seconds to let consumers finish after 1001 on shutdown.",
            positive_float,
        ],
        [
            "max-message-size",
            None,
            1024 * 1024,
            "Largest WebSocket message in bytes (bigger: close 1009).",
            positive_int,
        ],
        [
            "websocket-timeout",
            None,
            -1,
            "Close WebSockets after this many seconds (-1: never).",
            int,
        ],
        [
            "max-handshakes",
            None,
            DEFAULT_MAX_HANDSHAKES,
            "Stop accepting while this many requests await their answer "
            "(a WebSocket opened, an HTTP response).",
            positive_int,
        ],
        [
            "manhole",
            None,
            None,
            "Endpoint for the SSH manhole: unix:PATH or tcp:PORT:interface=127.0.0.1.",
        ],
        ["manhole-keys", None, None, "authorized_keys file of the operators allowed in."],
        [
            "metrics",
            None,
            None,
            "Serve Prometheus /metrics here: a port (on 127.0.0.1) or endpoint.",
        ],
    ]

    def __init__(self):
        super().__init__()
        self["endpoints"] = []

    def opt_endpoint(self, description):
        """Listen on a Twisted endpoint description (repeatable), e.g. tcp:8001:interface=::1."""
        self["endpoints"].append(description)

    opt_e = opt_endpoint

    def postOptions(self):
        from .reactor import incompatible_reactor_error, install_asyncio_reactor

        problem = incompatible_reactor_error(install_asyncio_reactor())
        if problem:
            raise usage.UsageError(problem)

        endpoints = []
        if self["socket"]:
            endpoints.append(unix_endpoint(self["socket"]))
        if self["port"] is not None:
            if not 0 <= self["port"] <= 65535:
                raise usage.UsageError(f"--port {self['port']} is not a TCP port number.")
            endpoints.append(tcp_endpoint(self["port"], self["interface"]))
        endpoints.extend(self["endpoints"])
        if not endpoints:
            endpoints.append(tcp_endpoint(8000, "127.0.0.1"))
        self["endpoints"] = endpoints

        if self["production"] and self["settings"]:
            raise usage.UsageError("Give either --production or --settings, not both.")
        if self["production"]:
            self["settings"] = PRODUCTION_SETTINGS
        elif not self["settings"]:
            self["settings"] = os.environ.get("DJANGO_SETTINGS_MODULE") or DEVELOPMENT_SETTINGS

        if bool(self["manhole"]) != bool(self["manhole-keys"]):
            raise usage.UsageError("--manhole and --manhole-keys go together.")
        if self["manhole"]:
            from .manhole import check_manhole_endpoint

            self["manhole"] = check_manhole_endpoint(
                self["manhole"], allow_remote=self["manhole-allow-remote"]
            )
            if not os.path.isfile(self["manhole-keys"]):
                raise usage.UsageError(f"--manhole-keys {self['manhole-keys']}: no such file.")
        if self["metrics"]:
            from .endpoints import operator_endpoint

            self["metrics"] = operator_endpoint(
                "metrics", self["metrics"], self["metrics-allow-remote"]
            )
