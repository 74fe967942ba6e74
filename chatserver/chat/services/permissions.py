"""Room permissions: guardian object permissions derived from membership role and room kind.

Grants and revocations run inside the transaction that changes the membership, so the
permission tables never disagree with ``Membership``. Consumers cache an ``Access`` per room and
drop it when a membership message for that room arrives.
"""

from dataclasses import dataclass
from datetime import datetime

from django.contrib.contenttypes.models import ContentType
from django.db.models import OuterRef, Subquery
from django.utils import timezone
from guardian.models import UserObjectPermission
from guardian.shortcuts import assign_perm, remove_perm

from ..models import Membership, Mute, Room

VIEW = "view_room"
SEND = "send_message"
MANAGE_MEMBERS = "manage_members"
MODIFY = "modify_room"
DELETE_ANY = "delete_any_message"

STAFF_PERMS = frozenset({VIEW, SEND, MANAGE_MEMBERS, MODIFY, DELETE_ANY})


def role_perms(room, role):
    """What a role may do in a room: admins everything; members view, and send where allowed."""
    if role in (Membership.OWNER, Membership.ADMIN) and room.kind != Room.DIRECT:
        return STAFF_PERMS
    if room.kind == Room.CHANNEL or (room.kind == Room.GROUP and room.locked):
        return frozenset({VIEW})
    return frozenset({VIEW, SEND})


def grant(room, users, role):
    """Give ``users`` (model instances) the permissions of ``role`` in ``room``."""
    users = list(users)
    if users:
        for perm in sorted(role_perms(room, role)):
            assign_perm(perm, users, room)


def revoke_all(room_id, user_ids=None):
    """Drop every object permission on a room, for some users or for everyone.

    One DELETE instead of one ``remove_perm`` per permission: used when a membership ends or a
    room is deleted, where every permission goes.
    """
    rows = UserObjectPermission.objects.filter(
        content_type=ContentType.objects.get_for_model(Room), object_pk=str(room_id)
    )
    if user_ids is not None:
        rows = rows.filter(user_id__in=list(user_ids))
    rows.delete()


def set_role(room, users, role):
    users = list(users)
    revoke_all(room.pk, [user.pk for user in users])
    grant(room, users, role)


def resync_send(room):
    """After (un)locking a group: members gain or lose send_message to match the lock."""
    members = [
        m.user
        for m in Membership.objects.filter(room=room, role=Membership.MEMBER).select_related("user")
    ]
    if not members:
        return
    if SEND in role_perms(room, Membership.MEMBER):
        assign_perm(SEND, members, room)
    else:
        remove_perm(SEND, members, room)


@dataclass(frozen=True)
class Access:
    """What one user may do in one room, as cached by a connection."""

    room_id: int
    kind: str
    role: str
    perms: frozenset
    # Set while the user is muted in the room (room.mute): ``perms`` lacks send_message until
    # then, and a connection reloads its cached Access once the time has passed.
    muted_until: datetime | None = None

    def expired(self, now=None):
        """Whether the mute this Access reflects has run out (reload it)."""
        return self.muted_until is not None and self.muted_until <= (now or timezone.now())

    @property
    def is_owner(self):
        return self.role == Membership.OWNER


def load_access(user, room_id):
    """The user's Access to a room, or None when they cannot see it (two queries)."""
    (access,) = load_accesses([(user, room_id)])
    return access


def load_accesses(pairs):
    """``load_access`` for many ``(user, room_id)`` pairs in the same two queries.

    Every connection loads its Access to a room at its first request there, so after a restart
    all clients reconnecting and sending at once would otherwise queue thousands of queries on
    the database thread (consumers batch them: ChatConsumer.require).
    """
    user_ids = {user.pk for user, _ in pairs}
    room_ids = {room_id for _, room_id in pairs}
    mute = Mute.objects.filter(
        room_id=OuterRef("room_id"), user_id=OuterRef("user_id"), until__gt=timezone.now()
    )
    memberships = {
        (m.user_id, m.room_id): m
        for m in Membership.objects.select_related("room")
        .filter(user_id__in=user_ids, room_id__in=room_ids)
        .annotate(muted_until=Subquery(mute.values("until")[:1]))
    }
    perms = {}
    room_type = ContentType.objects.get_for_model(Room)
    granted = UserObjectPermission.objects.filter(  # what guardian's get_user_perms reads
        content_type=room_type,
        permission__content_type=room_type,
        user_id__in=user_ids,
        object_pk__in=[str(room_id) for room_id in room_ids],
    ).values_list("user_id", "object_pk", "permission__codename")
    for user_id, object_pk, codename in granted:
        perms.setdefault((user_id, int(object_pk)), set()).add(codename)
    accesses = []
    for user, room_id in pairs:
        membership = memberships.get((user.pk, room_id))
        held = frozenset(perms.get((user.pk, room_id), ()))
        if membership is None or VIEW not in held or not user.is_active:
            accesses.append(None)
        else:
            muted = membership.muted_until
            if muted is not None:
                held = held - {SEND}
            accesses.append(Access(room_id, membership.room.kind, membership.role, held, muted))
    return accesses
