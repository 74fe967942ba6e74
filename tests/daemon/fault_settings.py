"""Settings for the fault tests' daemons: development's, with group memberships re-asserted in
the channel layer every second (GROUP_REFRESH_INTERVAL, 30 s by default), so that broadcasts
come back within seconds of a Redis restart."""

from chatserver.settings.development import *  # noqa: F403
from chatserver.settings.development import REALTIME_CHAT_MESSAGING

REALTIME_CHAT_MESSAGING = {**REALTIME_CHAT_MESSAGING, "GROUP_REFRESH_INTERVAL": 1}

# A flood of sends from one user is the traffic, not something to refuse (test_sigterm.py).
REALTIME_CHAT_MESSAGING["RATE_LIMITS"] = {
    "send": {"rate": 1000.0, "burst": 1000},
    "typing": {"rate": 2.0, "burst": 10},
    "read": {"rate": 20.0, "burst": 60},
    "manage": {"rate": 2.0, "burst": 10},
}
