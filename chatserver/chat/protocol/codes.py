"""Error codes (in error frames; the socket stays open) and WebSocket close codes.

Each table maps a code to the name docs/protocol.md gives it; tests/chat/test_protocol_doc.py
compares both tables with the doc's, row by row.
"""

ERROR_MALFORMED = 4000
ERROR_PERMISSION_DENIED = 4002
ERROR_VALIDATION = 4003
ERROR_NOT_FOUND = 4004
ERROR_CONFLICT = 4005
ERROR_INTERNAL = 4006
ERROR_UNKNOWN_EVENT = 4007
ERROR_RATE_LIMITED = 4029
ERROR_UNAVAILABLE = 4503  # the database cannot be reached now: retry (same client_msg_id)

ERROR_CODES = {
    ERROR_MALFORMED: "malformed frame",
    ERROR_PERMISSION_DENIED: "permission denied",
    ERROR_VALIDATION: "validation error",
    ERROR_NOT_FOUND: "not found",
    ERROR_CONFLICT: "conflict",
    ERROR_INTERNAL: "internal error",
    ERROR_UNKNOWN_EVENT: "unknown event",
    ERROR_RATE_LIMITED: "rate limited",
    ERROR_UNAVAILABLE: "temporarily unavailable",
}

CLOSE_GOING_AWAY = 1001  # server shutdown: reconnect to another process or later
CLOSE_TOO_BIG = 1009  # frame over the size limit
CLOSE_SLOW_READER = 1013  # the daemon held MAX_SEND_BUFFER_BYTES unsent: reconnect and resume
CLOSE_UNAUTHENTICATED = 4001  # sent after accept so clients can read it
CLOSE_SERVER_REQUEST = 4400  # an operator disconnected the user (manhole)
CLOSE_HEARTBEAT_EXPIRED = 4408  # no session.heartbeat within INACTIVITY_THRESHOLD
CLOSE_TOO_MANY_SOCKETS = 4409  # the user has MAX_SOCKETS_PER_USER sockets open already
CLOSE_TOO_MANY_CONNECTIONS = 4429  # connecting too fast, per user or per client address

CLOSE_CODES = {
    CLOSE_GOING_AWAY: "server shutting down",
    CLOSE_TOO_BIG: "frame too big",
    CLOSE_SLOW_READER: "reading too slowly",
    CLOSE_UNAUTHENTICATED: "unauthenticated",
    CLOSE_SERVER_REQUEST: "disconnected by an operator",
    CLOSE_HEARTBEAT_EXPIRED: "heartbeat expired",
    CLOSE_TOO_MANY_SOCKETS: "too many sockets",
    CLOSE_TOO_MANY_CONNECTIONS: "too many connections",
}
