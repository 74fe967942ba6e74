"""Broadcasts from synchronous code (the Django admin): through the channel layer to every daemon.

The consumers' own broadcasts go through fanout.py and this process's local groups, which live
on the daemon's event loop. Admin views run in a worker thread, so they hand the same group
messages straight to the layer: every daemon's local groups (this one's too) receive them and
deliver them to their members. Call these after the transaction that wrote the event commits
(``transaction.on_commit``), so no client hears of a change that could still roll back.
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from ..sessions import close_message
from . import fanout
from .localgroups import send_to_every_process

logger = logging.getLogger(__name__)


def _group_send(message):
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(send_to_every_process)(layer, message)
    except Exception:  # the database has it: clients catch up with session.resume
        logger.exception("could not broadcast %s to %s", message["type"], message["group"])


def to_room(room_id, text, invalidate=False):
    """A pre-encoded frame to every connection of a room (``invalidate``: permissions changed)."""
    _group_send(fanout.room_message(room_id, text, invalidate=invalidate))


def membership_changed(user_ids, room_id, state, text=None):
    """Make each user's connections join or leave a room's group, or reload their access."""
    for user_id in user_ids:
        _group_send(fanout.membership_message(user_id, room_id, state, text))


def close_user_sockets(user_id, code):
    """Close every socket of a user, on every daemon, with ``code``."""
    _group_send(close_message(user_id, code))


def close_sockets(user_id, channel_names, code):
    """Close some sockets of a user, named by their channels (Session rows' ``channel_name``)."""
    _group_send(close_message(user_id, code, channel_names))
