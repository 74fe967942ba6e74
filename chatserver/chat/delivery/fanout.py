"""Channel-layer messages the consumers handle, and the group names they travel on.

Frames are encoded once by the sender and carried as text; each consumer only writes the text
to its socket. ``origin`` names the connection that made the request: it already got its reply
directly, so it skips the broadcast copy. Every group message names its ``group`` and goes out
through the process's local groups: this process's members get it at once, every other process
once through the layer, and each hands it to its local members (see localgroups.py).
"""

from .localgroups import ROOM_EVENT, local_groups

MEMBERSHIP_CHANGED = "membership.changed"  # ChatConsumer.membership_changed
USER_EVENT = "user.event"  # ChatConsumer.user_event

JOINED, LEFT, CHANGED = "joined", "left", "changed"


def room_group(room_id):
    return f"room.{room_id}"


def user_group(user_id):
    """The group every connection of one user joins (all its devices)."""
    return f"user.{user_id}"


async def to_room(layer, room_id, text, origin=None, invalidate=False, skip_user=None, wait=True):
    """Broadcast a pre-encoded frame to every connection in a room.

    ``invalidate`` makes receivers drop their cached permissions for the room (lock changes);
    ``skip_user`` keeps the frame from one user's connections (typing indicators). Without
    ``wait`` the call returns once this process's members have the frame (see
    LocalGroups.publish).
    """
    message = room_message(room_id, text, origin, invalidate, skip_user)
    await local_groups(layer).publish(message, wait=wait)


def room_message(room_id, text, origin=None, invalidate=False, skip_user=None):
    """The group message of a room broadcast (see to_room; sync_broadcast.py sends it too)."""
    return {
        "type": ROOM_EVENT,
        "group": room_group(room_id),
        "room_id": room_id,
        "text": text,
        "origin": origin,
        "invalidate": invalidate,
        "skip_user": skip_user,
    }


def membership_message(user_id, room_id, state, text=None, origin=None):
    """The group message telling one user's connections about a membership change."""
    return {
        "type": MEMBERSHIP_CHANGED,
        "group": user_group(user_id),
        "room_id": room_id,
        "state": state,
        "text": text,
        "origin": origin,
    }


async def membership_changed(layer, user_ids, room_id, state, text=None, origin=None):
    """Tell every connection of each user to join/leave a room group and drop cached access."""
    groups = local_groups(layer)
    for user_id in user_ids:
        await groups.publish(membership_message(user_id, room_id, state, text, origin))


async def to_user(layer, user_id, text):
    group = user_group(user_id)
    await local_groups(layer).publish({"type": USER_EVENT, "group": group, "text": text})
