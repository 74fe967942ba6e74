"""The handler table: one coroutine ``handler(conn, frame, data)`` per client event.

``data`` has been validated against the event's schema in protocol.py. Handlers raise
ProtocolError for refusals; the consumer turns any exception into the error frame.

A handler in PIPELINED may finish its answer with ``conn.later``: the consumer reads the next
frame meanwhile, and answers stay in frame order (any other event waits for them first).
"""

from . import discovery, messages, moderation, presence, rooms, session, users

HANDLERS = {
    "session.heartbeat": session.heartbeat,
    "session.resume": session.resume,
    "room.create": rooms.create,
    "room.list": rooms.list_rooms,
    "room.info": rooms.info,
    "room.messages": rooms.history,
    "room.join": rooms.join,
    "room.leave": rooms.leave,
    "room.add_members": rooms.add_members,
    "room.remove_members": rooms.remove_members,
    "room.modify": rooms.modify,
    "message.send": messages.send,
    "message.modify": messages.modify,
    "message.react": messages.react,
    "message.read": messages.read,
    "message.acknowledged": messages.acknowledged,
    "message.typing": messages.typing,
    "room.mute": moderation.mute,
    "room.unmute": moderation.unmute,
    "presence.subscribe": presence.subscribe,
    "presence.unsubscribe": presence.unsubscribe,
    "presence.hide": presence.hide,
    "user.block": users.block,
    "user.unblock": users.unblock,
    "user.search": users.search,
    "room.discover": discovery.discover,
}

PIPELINED = frozenset({"message.send"})
