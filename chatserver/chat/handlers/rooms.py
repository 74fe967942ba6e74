"""Room events: create, list, info, messages (history), join, leave, add/remove members, modify.

Order matters for a loss-free fan-out: the requesting connection enters a room group before it
gets its reply, and users leaving a room are told (and leave the group) before the remaining
members hear about it.
"""

from channels.db import database_sync_to_async

from ..delivery import fanout
from ..protocol import (
    MEMBERS_ADDED,
    MEMBERS_REMOVED,
    ROOM_CREATED,
    ROOM_DELETED,
    ROOM_EXIT,
    ROOM_INFO,
    ROOM_LIST,
    ROOM_MESSAGES,
    ROOM_UPDATED,
    encode_event,
)
from ..serializers import user_payload
from ..services import messages as message_service
from ..services import rooms as service
from ..services.permissions import MANAGE_MEMBERS, MODIFY, VIEW

create_room = database_sync_to_async(service.create_room)
list_rooms_db = database_sync_to_async(service.list_rooms)
room_info = database_sync_to_async(service.room_info)
history_db = database_sync_to_async(message_service.history)
join_room = database_sync_to_async(service.join_room)
leave_room = database_sync_to_async(service.leave_room)
add_members_db = database_sync_to_async(service.add_members)
remove_members_db = database_sync_to_async(service.remove_members)
modify_room = database_sync_to_async(service.modify_room)


async def create(conn, frame, data):
    change = await create_room(conn.user, data)
    room_id = change.data["room"]["id"]
    text = encode_event(ROOM_CREATED, change.data)
    if change.created:
        await conn.enter_room(room_id)
    await conn.respond(frame, text)
    await fanout.membership_changed(
        conn.channel_layer, change.joined, room_id, fanout.JOINED, text, conn.channel_name
    )


async def list_rooms(conn, frame, data):
    await conn.reply(frame, ROOM_LIST, await list_rooms_db(conn.user, data))


async def info(conn, frame, data):
    await conn.require(data["room_id"], VIEW)
    await conn.reply(frame, ROOM_INFO, await room_info(data["room_id"]))


async def history(conn, frame, data):
    await conn.require(data["room_id"], VIEW)
    await conn.reply(frame, ROOM_MESSAGES, await history_db(data["room_id"], data))


async def join(conn, frame, data):
    room_id = data["room_id"]
    change = await join_room(conn.user, room_id)
    text = encode_event(MEMBERS_ADDED, change.data)
    await conn.enter_room(room_id)
    await conn.respond(frame, text)
    await fanout.to_room(conn.channel_layer, room_id, text, origin=conn.channel_name)
    # The user's other devices join the group too (they were not in it for the broadcast).
    await fanout.membership_changed(
        conn.channel_layer, change.joined, room_id, fanout.JOINED, text, conn.channel_name
    )


def _exit_text(change, room_id, actor):
    return encode_event(
        ROOM_EXIT,
        {"room_id": room_id, "seq": change.data.get("seq"), "removed_by": user_payload(actor)},
    )


async def leave(conn, frame, data):
    room_id = data["room_id"]
    access = await conn.require(room_id, VIEW)
    change = await leave_room(conn.user, access, room_id)
    layer = conn.channel_layer
    if change.deleted:  # the last member left
        text = encode_event(ROOM_DELETED, change.data)
    else:
        text = _exit_text(change, room_id, conn.user)
    await conn.exit_room(room_id)
    await conn.respond(frame, text)
    await fanout.membership_changed(
        layer, [conn.user.pk], room_id, fanout.LEFT, text, conn.channel_name
    )
    if not change.deleted:
        removed = encode_event(MEMBERS_REMOVED, change.data)
        await fanout.membership_changed(layer, change.changed, room_id, fanout.CHANGED)
        await fanout.to_room(layer, room_id, removed, origin=conn.channel_name)


async def add_members(conn, frame, data):
    room_id = data["room_id"]
    await conn.require(room_id, MANAGE_MEMBERS)
    change = await add_members_db(conn.user, room_id, data["members"])
    text = encode_event(MEMBERS_ADDED, change.data)
    await conn.respond(frame, text)
    await fanout.to_room(conn.channel_layer, room_id, text, origin=conn.channel_name)
    await fanout.membership_changed(conn.channel_layer, change.joined, room_id, fanout.JOINED, text)


async def remove_members(conn, frame, data):
    room_id = data["room_id"]
    access = await conn.require(room_id, MANAGE_MEMBERS)
    change = await remove_members_db(conn.user, access, room_id, data["members"])
    exit_text = _exit_text(change, room_id, conn.user)
    await fanout.membership_changed(
        conn.channel_layer, change.left, room_id, fanout.LEFT, exit_text
    )
    text = encode_event(MEMBERS_REMOVED, change.data)
    await conn.respond(frame, text)
    await fanout.to_room(conn.channel_layer, room_id, text, origin=conn.channel_name)


async def modify(conn, frame, data):
    room_id = data["room_id"]
    access = await conn.require(room_id, MODIFY if data["action"] == "update" else VIEW)
    change = await modify_room(conn.user, access, room_id, data)
    layer = conn.channel_layer
    if change.deleted:
        text = encode_event(ROOM_DELETED, change.data)
        await conn.exit_room(room_id)
        await conn.respond(frame, text)
        await fanout.membership_changed(
            layer, change.left, room_id, fanout.LEFT, text, conn.channel_name
        )
        return
    text = encode_event(ROOM_UPDATED, change.data)
    if change.perms_changed:
        conn.forget(room_id)
    await conn.respond(frame, text)
    await fanout.membership_changed(layer, change.changed, room_id, fanout.CHANGED)
    await fanout.to_room(
        layer, room_id, text, origin=conn.channel_name, invalidate=change.perms_changed
    )
