"""Moderation: what room admins and staff do to other people's messages and memberships.

The protocol (room.mute, room.unmute) and the Django admin (chat/admin.py) both come here, so a
message deleted or a member removed by staff is a room event with a ``seq`` like any other, and
the caller broadcasts the returned frame data. Staff act with the powers of a room's owner.
"""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from ..models import Membership, Message, Mute
from ..protocol import ERROR_PERMISSION_DENIED, ROOM_MUTE, ProtocolError, invalid
from ..serializers import user_payload
from . import eventlog
from . import messages as message_service
from . import rooms as room_service
from .permissions import STAFF_PERMS, Access
from .rooms import not_found


def staff_access(room):
    """The Access staff act with in a room: an owner's."""
    return Access(room.pk, room.kind, Membership.OWNER, STAFF_PERMS)


# -- messages --------------------------------------------------------------------------------


def delete_message(message_id):
    """Delete a message (a tombstone under MESSAGE_SOFT_DELETE) as a room event; frame data."""
    message = Message.objects.filter(pk=message_id, is_deleted=False).first()
    if message is None:
        raise not_found("Message")
    return message_service.apply_modification(message, message.room_id, "delete")


def edit_message(message_id, content):
    """Replace a message's content as a room event (marked edited); frame data."""
    message = Message.objects.filter(pk=message_id, is_deleted=False).first()
    if message is None:
        raise not_found("Message")
    return message_service.apply_modification(message, message.room_id, "update", content)


# -- members ---------------------------------------------------------------------------------


def remove_members(actor, room, user_ids):
    """Remove members as the room's owner would (never the owner); a rooms.Change."""
    return room_service.remove_members(actor, staff_access(room), room.pk, list(user_ids))


# -- mutes -----------------------------------------------------------------------------------


def mute_deadline(data, now=None):
    """When a room.mute ends: ``until`` (a future time) or ``seconds`` from now, one of them."""
    now = now or timezone.now()
    if ("until" in data) == ("seconds" in data):
        raise invalid("Give 'until' or 'seconds', one of them.")
    if "seconds" in data:
        return now + timedelta(seconds=data["seconds"])
    if data["until"] <= now:
        raise invalid("'until' must be in the future.")
    if data["until"] - now > timedelta(seconds=MAX_MUTE_SECONDS):
        raise invalid(f"A mute lasts at most {MAX_MUTE_SECONDS} seconds.")
    return data["until"]


MAX_MUTE_SECONDS = 366 * 24 * 3600


def _target(actor, access, room_id, user_id):
    """The member ``actor`` may mute: not themself, never the owner, an admin only by the owner."""
    if user_id == actor.pk:
        raise invalid("You cannot mute yourself.")
    target = Membership.objects.filter(room_id=room_id, user_id=user_id).select_related("user")
    target = target.first()
    if target is None:
        raise invalid("Not a member of this room.")
    if target.role == Membership.OWNER or (target.role == Membership.ADMIN and not access.is_owner):
        refusal = "Only the owner mutes admins; nobody the owner."
        raise ProtocolError(ERROR_PERMISSION_DENIED, refusal)
    return target


def mute(actor, access, room_id, user_id, until):
    """Mute a member until ``until`` (replacing an earlier mute); the room event's frame data."""
    if access.kind == "direct":
        raise invalid("Nobody is muted in a one-to-one room.")
    target = _target(actor, access, room_id, user_id)
    with transaction.atomic():
        Mute.objects.update_or_create(
            room_id=room_id, user_id=user_id, defaults={"until": until, "muted_by": actor}
        )
        data = {
            "user": user_payload(target.user),
            "muted_until": until.isoformat(),
            "by": user_payload(actor),
        }
        seq = eventlog.record(room_id, ROOM_MUTE, data)
    return eventlog.frame_data(room_id, seq, data), True


def unmute(actor, access, room_id, user_id):
    """Lift a mute; ``(frame data, changed)``: lifting none changes nothing and takes no seq."""
    target = _target(actor, access, room_id, user_id)
    data = {"user": user_payload(target.user), "muted_until": None, "by": user_payload(actor)}
    with transaction.atomic():
        rows = Mute.objects.filter(room_id=room_id, user_id=user_id)
        live = rows.filter(until__gt=timezone.now()).exists()
        rows.delete()
        if not live:
            return eventlog.frame_data(room_id, None, data), False
        seq = eventlog.record(room_id, ROOM_MUTE, data)
    return eventlog.frame_data(room_id, seq, data), True
