"""Message events: send, modify, react, read, acknowledged, typing."""

from channels.db import database_sync_to_async

from .. import runtime
from ..delivery import fanout
from ..protocol import (
    DELIVERED,
    ERROR_NOT_FOUND,
    MESSAGE_CREATED,
    MESSAGE_MODIFIED,
    REACTION,
    READ_RECEIPT,
    TYPING,
    ProtocolError,
    encode_event,
)
from ..reconnect import refused_while_lost
from ..serializers import user_payload
from ..services import messages as service
from ..services.permissions import SEND, VIEW
from ..services.rooms import not_found
from ..storage.call_queue import HOT_PATH_LIMIT, Batcher

# Sends made while a batch is being stored wait for the next one (storage/call_queue.py), stored
# by the running event loop's MessageStore (chat/runtime.py).
store_messages = Batcher(runtime.store_sends, limit=HOT_PATH_LIMIT)
message_room = database_sync_to_async(service.message_room)
modify_message = database_sync_to_async(service.modify_message)
react_db = database_sync_to_async(service.react)
mark_read = database_sync_to_async(service.mark_read)
acknowledge = database_sync_to_async(service.acknowledge)


@refused_while_lost  # loading the sender's access to the room, while the database is away: 4503
async def send(conn, frame, data):
    """Queue the message for storage and read the next frame: the answer and the broadcast
    follow in the order the connection sent its frames (ChatConsumer.later)."""
    room_id = data["room_id"]
    await conn.require(room_id, SEND)
    stored = store_messages.submit((conn.user, room_id, data))
    conn.later(frame, _answer_send(conn, frame, room_id, stored))


async def _answer_send(conn, frame, room_id, stored):
    payload, duplicate = await stored
    if duplicate:
        # A resend: the original went out already, answer the sender alone.
        await conn.reply(frame, MESSAGE_CREATED, {**payload, "duplicate": True})
        return
    text = encode_event(MESSAGE_CREATED, payload)
    await conn.respond(frame, text)
    # The next answer on this connection need not wait for Redis: the room's outbox sends to
    # the layer in order, and a member elsewhere who misses a frame sees the seq gap.
    await fanout.to_room(conn.channel_layer, room_id, text, origin=conn.channel_name, wait=False)


async def _message_access(conn, message_id):
    """Access to the room of a message; a message in a room one cannot see is 4004 "Message not
    found." like a missing one, so ids cannot be probed."""
    room_id = await message_room(message_id)
    if room_id is None:
        raise not_found("Message")
    try:
        return await conn.require(room_id, VIEW)
    except ProtocolError as error:
        if error.code == ERROR_NOT_FOUND:
            raise not_found("Message") from None
        raise


async def modify(conn, frame, data):
    access = await _message_access(conn, data["message_id"])
    payload = await modify_message(conn.user, access, data["message_id"], data)
    text = encode_event(MESSAGE_MODIFIED, payload)
    await conn.respond(frame, text)
    await fanout.to_room(conn.channel_layer, access.room_id, text, origin=conn.channel_name)


async def react(conn, frame, data):
    access = await _message_access(conn, data["message_id"])
    payload, changed = await react_db(conn.user, access, data["message_id"], data)
    text = encode_event(REACTION, payload)
    await conn.respond(frame, text)
    if changed:
        await fanout.to_room(conn.channel_layer, access.room_id, text, origin=conn.channel_name)


async def read(conn, frame, data):
    reply, broadcasts = await mark_read(conn.user, data["rooms"])
    await conn.reply(frame, READ_RECEIPT, reply)
    for room_id, payload in broadcasts.items():
        text = encode_event(READ_RECEIPT, payload)
        await fanout.to_room(conn.channel_layer, room_id, text, origin=conn.channel_name)


async def acknowledged(conn, frame, data):
    """No reply: the authors of the delivered messages hear about it, nobody else."""
    for author_id, payload in (await acknowledge(conn.user, data["rooms"])).items():
        await fanout.to_user(conn.channel_layer, author_id, encode_event(DELIVERED, payload))


async def typing(conn, frame, data):
    """No reply and no echo: every other member's connections get the indicator."""
    room_id = data["room_id"]
    await conn.require(room_id, SEND)
    payload = {
        "room_id": room_id,
        "user": user_payload(conn.user),
        "state": data.get("state", "start"),
    }
    await fanout.to_room(
        conn.channel_layer, room_id, encode_event(TYPING, payload), skip_user=conn.user.pk
    )
