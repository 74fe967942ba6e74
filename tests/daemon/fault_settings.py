"""Settings for the fault tests' daemons: development's, with group memberships re-asserted in
the channel layer every second (GROUP_REFRESH_INTERVAL, 30 s by default), so that broadcasts
come back within seconds of a Redis restart."""

from chatserver.settings.development import *  # noqa: F403
from chatserver.settings.development import REALTIME_CHAT_MESSAGING

REALTIME_CHAT_MESSAGING = {**REALTIME_CHAT_MESSAGING, "GROUP_REFRESH_INTERVAL": 1}
