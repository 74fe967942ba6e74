"""Public rooms as a stranger finds them: by name prefix, most recently active first.

Only public groups and channels are listed (one-to-one rooms are never public); joining stays
``room.join``. Pages follow the room list's cursor (last activity, room id), so a room that
becomes active while someone pages does not appear twice on the same walk.
"""

from django.db.models import Exists, OuterRef, Q

from ..models import Membership, Room
from ..serializers import room_payload
from .rooms import _count, _decode_cursor, _encode_cursor

DEFAULT_LIMIT = 20


def discover(user, data):
    """One page of public rooms whose name starts with ``query`` (case-insensitive), each with
    its member count and whether ``user`` is already in it."""
    limit = data.get("limit", DEFAULT_LIMIT)
    rooms = (
        Room.objects.filter(is_public=True, kind__in=(Room.GROUP, Room.CHANNEL))
        .annotate(
            member_count=_count(Membership.objects.filter(room=OuterRef("pk"))),
            is_member=Exists(Membership.objects.filter(room=OuterRef("pk"), user=user)),
        )
        .order_by("-last_event_at", "-pk")
    )
    query = data.get("query", "").strip()
    if query:
        rooms = rooms.filter(name__istartswith=query)
    if "before" in data:
        at, room_id = _decode_cursor(data["before"])
        rooms = rooms.filter(Q(last_event_at__lt=at) | Q(last_event_at=at, pk__lt=room_id))
    page = list(rooms[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return {
        "rooms": [
            {**room_payload(room), "member_count": room.member_count, "is_member": room.is_member}
            for room in page
        ],
        "has_more": more,
        "next_before": _encode_cursor(page[-1]) if more else None,
    }
