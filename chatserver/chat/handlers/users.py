"""User events: user.block, user.unblock and user.search (answered to the requesting socket
only)."""

from channels.db import database_sync_to_async

from ..protocol import USER_BLOCK, USER_SEARCH
from ..services import users as service

block_user = database_sync_to_async(service.block)
unblock_user = database_sync_to_async(service.unblock)


async def block(conn, frame, data):
    await conn.reply(frame, USER_BLOCK, await block_user(conn.user, data["user_id"]))


async def unblock(conn, frame, data):
    await conn.reply(frame, USER_BLOCK, await unblock_user(conn.user, data["user_id"]))


search_users = database_sync_to_async(service.search)


async def search(conn, frame, data):
    await conn.reply(frame, USER_SEARCH, await search_users(conn.user, data["query"]))
