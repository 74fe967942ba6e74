"""Rooms and memberships: create, list, inspect, join, leave, add, remove, modify.

Synchronous functions run through ``database_sync_to_async`` by the handlers. Each write is one
transaction that changes the rows, the guardian permissions and the room's event log together,
and returns the frame data for the handler to encode and fan out.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce

from ..conf import option
from ..models import Membership, Message, Room
from ..protocol import (
    ERROR_CONFLICT,
    ERROR_NOT_FOUND,
    ERROR_PERMISSION_DENIED,
    MAX_ID,
    MEMBERS_ADDED,
    MEMBERS_REMOVED,
    ROOM_CREATED,
    ROOM_UPDATED,
    ProtocolError,
    invalid,
    is_ascii_number,
)
from ..serializers import member_payload, room_payload, user_payload
from . import eventlog, permissions
from .users import addable_users


@dataclass
class Change:
    """The outcome of a membership or room write, for the handler to fan out."""

    data: dict
    joined: list = field(default_factory=list)  # user ids that became members
    left: list = field(default_factory=list)  # user ids that stopped being members
    changed: list = field(default_factory=list)  # user ids whose role changed
    perms_changed: bool = False  # every member's permissions changed (lock toggled)
    deleted: bool = False
    created: bool = True


def not_found(what="Room"):
    return ProtocolError(ERROR_NOT_FOUND, f"{what} not found.")


def _users(actor, user_ids):
    """The users ``actor`` may add (users.addable_users), ``actor`` left out."""
    return addable_users(actor, [uid for uid in user_ids if uid != actor.pk])


def _member_count(room_id):
    return Membership.objects.filter(room_id=room_id).count()


def _locked_room(room_id):
    """The room, locked for the rest of the transaction (serialises member-limit checks)."""
    room = Room.objects.select_for_update().filter(pk=room_id).first()
    if room is None:
        raise not_found()
    return room


# -- create ----------------------------------------------------------------------------------


def create_room(creator, data):
    kind = data["type"]
    if kind == Room.DIRECT:
        return _create_direct(creator, data)
    if "name" not in data:
        raise invalid("'name' is required for group chats and channels.")
    if kind == Room.CHANNEL and "locked" in data:
        raise invalid("Channels cannot be locked: only moderators send anyway.")
    others = _users(creator, data.get("members", []))
    limit = data.get("member_limit", option("DEFAULT_MEMBER_LIMIT"))
    if len(others) + 1 > limit:
        raise invalid(f"A room of member_limit {limit} cannot start with {len(others) + 1}.")
    with transaction.atomic():
        room = Room.objects.create(
            kind=kind,
            name=data["name"],
            description=data.get("description", ""),
            is_public=data.get("is_public", False),
            locked=data.get("locked", False),
            member_limit=limit,
            created_by=creator,
        )
        return _populate(room, creator, [(creator, Membership.OWNER)] + _as(others))


def _as(users, role=Membership.MEMBER):
    return [(user, role) for user in users]


def _create_direct(creator, data):
    extra = sorted(set(data) - {"type", "members"})
    if extra:
        raise invalid(f"One-to-one rooms take only 'members': drop {', '.join(extra)}.")
    members = data.get("members") or []
    if len(members) != 1 or members[0] == creator.pk:
        raise invalid("A one-to-one room needs exactly one other member.")
    (peer,) = _users(creator, members)
    key = f"{min(creator.pk, peer.pk)}:{max(creator.pk, peer.pk)}"
    existing = Room.objects.filter(direct_key=key).first()
    if existing is None:
        try:
            with transaction.atomic():
                room = Room.objects.create(
                    kind=Room.DIRECT, direct_key=key, member_limit=2, created_by=creator
                )
                return _populate(room, creator, _as([creator, peer]))
        except IntegrityError:
            # Both users created the pair at once: the unique direct_key let one win.
            existing = Room.objects.filter(direct_key=key).first()
            if existing is None:
                raise
    # Already there: the reply describes it, with no seq since nothing happened.
    info = room_info(existing.pk)
    return Change(data={"room_id": existing.pk, "seq": None, **info}, created=False)


def _populate(room, creator, members):
    Membership.objects.bulk_create(
        [Membership(room=room, user=user, role=role) for user, role in members]
    )
    for role in {role for _, role in members}:
        permissions.grant(room, [user for user, r in members if r == role], role)
    seq = eventlog.next_seq(room.pk)
    room.last_seq = seq
    data = {
        "room": room_payload(room),
        "members": [
            {**user_payload(user), "role": role, "last_read_seq": 0} for user, role in members
        ],
        "created_by": user_payload(creator),
    }
    eventlog.record(room.pk, ROOM_CREATED, data, seq=seq)
    return Change(
        data=eventlog.frame_data(room.pk, seq, data), joined=[user.pk for user, _ in members]
    )


# -- read ------------------------------------------------------------------------------------


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def _encode_cursor(room):
    return f"{(room.last_event_at - EPOCH) // MICROSECOND}:{room.pk}"


def _decode_cursor(cursor):
    """``(last_event_at, room_id)`` of a cursor from _encode_cursor; anything else is 4003."""
    parts = cursor.split(":")
    try:
        if len(parts) != 2 or not all(is_ascii_number(part) for part in parts):
            raise ValueError(cursor)
        micros, room_id = (int(part) for part in parts)
        if not 1 <= room_id <= MAX_ID:
            raise ValueError(cursor)
        return EPOCH + micros * MICROSECOND, room_id
    except (ValueError, OverflowError, OSError):
        raise invalid("'before' is not a cursor this server gave out.") from None


def _count(queryset):
    return Coalesce(Subquery(queryset.values("room").annotate(n=Count("pk")).values("n")[:1]), 0)


def _unread_messages(user):
    """Messages of the membership's room after its read cursor, not by the user."""
    return Message.objects.filter(
        room=OuterRef("room_id"), seq__gt=OuterRef("last_read_seq"), is_deleted=False
    ).exclude(author=user)


def rooms_with_unread_flag(user):
    """``[(room_id, has_unread)]`` for every room of the user, in one query (used at connect)."""
    return list(
        Membership.objects.filter(user=user)
        .annotate(has_unread=Exists(_unread_messages(user)))
        .values_list("room_id", "has_unread")
    )


def _room_rows(user, limit, before=None, unread_only=False):
    """A page of the user's memberships with unread count, member count and last message id."""
    unread = _unread_messages(user)
    rows = (
        Membership.objects.filter(user=user)
        .select_related("room")
        .annotate(
            unread_count=_count(unread),
            member_count=_count(Membership.objects.filter(room=OuterRef("room_id"))),
            last_message_id=Subquery(
                Message.objects.filter(room=OuterRef("room_id")).order_by("-seq").values("pk")[:1]
            ),
        )
        .order_by("-room__last_event_at", "-room_id")
    )
    if unread_only:
        rows = rows.filter(unread_count__gt=0)
    if before is not None:
        at, room_id = before
        rows = rows.filter(
            Q(room__last_event_at__lt=at) | Q(room__last_event_at=at, room_id__lt=room_id)
        )
    rows = list(rows[: limit + 1])
    return rows[:limit], len(rows) > limit


def _room_items(user, rows):
    """Room summaries for a page of memberships: at most three more queries whatever the page
    size (the last messages and their reactions; the peers of one-to-one rooms)."""
    messages = eventlog.message_payloads([r.last_message_id for r in rows if r.last_message_id])
    direct = [r.room_id for r in rows if r.room.kind == Room.DIRECT]
    peers = {}
    if direct:
        others = Membership.objects.filter(room_id__in=direct).exclude(user=user)
        peers = {peer.room_id: user_payload(peer.user) for peer in others.select_related("user")}
    return [
        room_item(row, row.room, messages.get(row.last_message_id), peers.get(row.room_id))
        for row in rows
    ]


def room_item(row, room, last_message, peer):
    """One room's summary in room lists and ``chat.notifications``; ``row`` has the
    membership's ``role`` and ``last_read_seq`` and the room's ``member_count`` and
    ``unread_count`` (services/connect.py builds it from its own rows as well)."""
    return {
        **room_payload(room),
        "role": row.role,
        "member_count": row.member_count,
        "unread_count": row.unread_count,
        "last_read_seq": row.last_read_seq,
        "last_message": last_message,
        "peer": peer,
    }


def list_rooms(user, data):
    limit = data.get("limit", option("PAGE_SIZE"))
    before = _decode_cursor(data["before"]) if "before" in data else None
    rows, more = _room_rows(user, limit, before)
    return {
        "rooms": _room_items(user, rows),
        "has_more": more,
        "next_before": _encode_cursor(rows[-1].room) if more else None,
    }


def notifications(user):
    """Rooms with unread messages, newest first, bounded (page on with room.list)."""
    rows, more = _room_rows(user, option("NOTIFICATION_MAX_ROOMS"), unread_only=True)
    return {"rooms": _room_items(user, rows), "has_more": more}


def room_info(room_id):
    room = Room.objects.filter(pk=room_id).first()
    if room is None:
        raise not_found()
    members = Membership.objects.filter(room_id=room_id).select_related("user").order_by("pk")
    return {"room": room_payload(room), "members": [member_payload(m) for m in members]}


# -- membership changes ----------------------------------------------------------------------


def _membership_event(room, event_type, members, actor_key, actor, extra=None):
    data = {"members": [user_payload(u) for u in members], actor_key: user_payload(actor)}
    data.update(extra or {})
    seq = eventlog.record(room.pk, event_type, data)
    return eventlog.frame_data(room.pk, seq, data)


def join_room(user, room_id):
    with transaction.atomic():
        room = _locked_room(room_id)
        if room.kind == Room.DIRECT or not room.is_public:
            # A private room the user is not in does not exist for them.
            if not Membership.objects.filter(room=room, user=user).exists():
                raise not_found()
        if Membership.objects.filter(room=room, user=user).exists():
            raise ProtocolError(ERROR_CONFLICT, "Already a member of this room.")
        if _member_count(room.pk) >= room.member_limit:
            raise ProtocolError(ERROR_CONFLICT, "The room is full.")
        Membership.objects.create(room=room, user=user)
        permissions.grant(room, [user], Membership.MEMBER)
        data = _membership_event(room, MEMBERS_ADDED, [user], "added_by", user)
    return Change(data=data, joined=[user.pk])


def add_members(actor, room_id, user_ids):
    with transaction.atomic():
        room = _locked_room(room_id)
        if room.kind == Room.DIRECT:
            raise invalid("One-to-one rooms cannot take more members.")
        users = _users(actor, user_ids)
        present = set(
            Membership.objects.filter(room=room, user__in=users).values_list("user_id", flat=True)
        )
        new = [user for user in users if user.pk not in present]
        if not new:
            raise ProtocolError(ERROR_CONFLICT, "Every listed user is already a member.")
        if _member_count(room.pk) + len(new) > room.member_limit:
            raise ProtocolError(ERROR_CONFLICT, f"The room is limited to {room.member_limit}.")
        Membership.objects.bulk_create([Membership(room=room, user=user) for user in new])
        permissions.grant(room, new, Membership.MEMBER)
        data = _membership_event(room, MEMBERS_ADDED, new, "added_by", actor)
    return Change(data=data, joined=[user.pk for user in new])


def remove_members(actor, access, room_id, user_ids):
    if access.kind == Room.DIRECT:
        raise invalid("Nobody can be removed from a one-to-one room.")
    if actor.pk in user_ids:
        raise invalid("Use room.leave to leave a room.")
    with transaction.atomic():
        room = _locked_room(room_id)
        targets = list(
            Membership.objects.filter(room=room, user_id__in=user_ids).select_related("user")
        )
        missing = sorted(set(user_ids) - {m.user_id for m in targets})
        if missing:
            raise invalid(f"Not members of this room: {missing}.")
        for target in targets:
            if target.role == Membership.OWNER or (
                target.role == Membership.ADMIN and not access.is_owner
            ):
                raise ProtocolError(
                    ERROR_PERMISSION_DENIED, "Only the owner removes admins; nobody the owner."
                )
        ids = [m.user_id for m in targets]
        Membership.objects.filter(pk__in=[m.pk for m in targets]).delete()
        permissions.revoke_all(room.pk, ids)
        data = _membership_event(
            room, MEMBERS_REMOVED, [m.user for m in targets], "removed_by", actor
        )
    return Change(data=data, left=ids)


def leave_room(user, access, room_id):
    """Leave; an owner hands the room to the longest-standing admin (else member)."""
    if access.kind == Room.DIRECT:
        raise invalid("One-to-one rooms cannot be left.")
    with transaction.atomic():
        room = _locked_room(room_id)
        Membership.objects.filter(room=room, user=user).delete()
        permissions.revoke_all(room.pk, [user.pk])
        extra, promoted = {}, []
        if access.is_owner:
            heir = (
                Membership.objects.filter(room=room)
                .select_related("user")
                .order_by("role", "joined_at", "pk")  # "admin" sorts before "member"
                .first()
            )
            if heir is None:
                permissions.revoke_all(room.pk)
                room.delete()
                return Change(data={"room_id": room_id, "deleted_by": None}, deleted=True)
            heir.role = Membership.OWNER
            heir.save(update_fields=["role"])
            permissions.set_role(room, [heir.user], Membership.OWNER)
            extra["new_owner"] = user_payload(heir.user)
            promoted.append(heir.user_id)
        data = _membership_event(room, MEMBERS_REMOVED, [user], "removed_by", user, extra)
    return Change(data=data, left=[user.pk], changed=promoted)


# -- room settings ---------------------------------------------------------------------------

UPDATABLE = ("name", "description", "is_public", "locked", "member_limit")


def modify_room(actor, access, room_id, data):
    action = data["action"]
    if access.kind == Room.DIRECT:
        raise invalid("One-to-one rooms have no settings to modify.")
    if action != "update" and not access.is_owner:
        raise ProtocolError(ERROR_PERMISSION_DENIED, f"Only the room owner may {action}.")
    if action == "delete":
        return _delete_room(actor, room_id)
    if action == "update":
        return _update_room(actor, room_id, data)
    return _set_admins(actor, room_id, data, promote=action == "add_admin")


def _update_room(actor, room_id, data):
    extra = sorted(set(data) - {"action", "room_id", *UPDATABLE})
    if extra:
        raise invalid(f"'update' does not take {', '.join(extra)}.")
    changes = {key: data[key] for key in UPDATABLE if key in data}
    if not changes:
        raise invalid(f"Nothing to update: give one of {', '.join(UPDATABLE)}.")
    with transaction.atomic():
        room = _locked_room(room_id)
        if "locked" in changes and room.kind != Room.GROUP:
            raise invalid("Only group chats can be locked.")
        if changes.get("member_limit", room.member_limit) < _member_count(room.pk):
            raise ProtocolError(ERROR_CONFLICT, "The room already has more members than that.")
        lock_toggled = changes.get("locked", room.locked) != room.locked
        for key, value in changes.items():
            setattr(room, key, value)
        room.save(update_fields=list(changes))
        if lock_toggled:
            permissions.resync_send(room)
        seq = eventlog.next_seq(room.pk)
        room.last_seq = seq
        payload = {
            "room": room_payload(room),
            "changes": changes,
            "updated_by": user_payload(actor),
        }
        eventlog.record(room.pk, ROOM_UPDATED, payload, seq=seq)
    return Change(data=eventlog.frame_data(room.pk, seq, payload), perms_changed=lock_toggled)


def _set_admins(actor, room_id, data, promote):
    if "members" not in data:
        raise invalid("'members' is required.")
    with transaction.atomic():
        room = _locked_room(room_id)
        targets = list(
            Membership.objects.filter(room=room, user_id__in=data["members"])
            .exclude(role=Membership.OWNER)
            .select_related("user")
        )
        missing = sorted(set(data["members"]) - {m.user_id for m in targets})
        if missing:
            raise invalid(f"Not (non-owner) members of this room: {missing}.")
        role = Membership.ADMIN if promote else Membership.MEMBER
        Membership.objects.filter(pk__in=[m.pk for m in targets]).update(role=role)
        users = [m.user for m in targets]
        permissions.set_role(room, users, role)
        seq = eventlog.next_seq(room.pk)
        room.last_seq = seq
        key = "admins_added" if promote else "admins_removed"
        payload = {
            "room": room_payload(room),
            "changes": {key: [user_payload(u) for u in users]},
            "updated_by": user_payload(actor),
        }
        eventlog.record(room.pk, ROOM_UPDATED, payload, seq=seq)
    return Change(data=eventlog.frame_data(room.pk, seq, payload), changed=[u.pk for u in users])


def _delete_room(actor, room_id):
    with transaction.atomic():
        room = _locked_room(room_id)
        member_ids = list(Membership.objects.filter(room=room).values_list("user_id", flat=True))
        permissions.revoke_all(room.pk)
        room.delete()
    return Change(
        data={"room_id": room_id, "deleted_by": user_payload(actor)}, left=member_ids, deleted=True
    )
