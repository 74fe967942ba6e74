"""Create the bench's users and rooms for chatserver through its own ORM and services.

Run in our venv with the bench's settings environment (same DB as the servers)::

    python -m bench.setup_ours PLAN.json OUT.json

PLAN: {"users": N, "groups": [size, ...], "pairs": [first_user_index, count],
"small_groups": [first, count, size], "storm": [first, count, room_size, rooms_each, backlog]}.
OUT: {"user_ids": [...], "tokens": [...], "groups": [room_id, ...], "pairs": [room_id, ...],
"small_groups": [room_id, ...], "storm_rooms": [[room_id, ...] per storm user],
"storm_cursors": {room_id: seq}}.
User i of the plan is ``bench<i>``; group k has users 0..size-1 (user 0 owns it); pair j joins
users first+2j and first+2j+1; small group g holds users first+size*g .. first+size*(g+1)-1.
Storm user k is in ``rooms_each`` rooms of ``room_size`` (one per layer, each layer a rotation
of the storm users); each storm room holds ``backlog`` messages after the cursor its members
resume from.
"""

import json
import sys
import time


def main(plan_path, out_path):
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from chatserver.chat.auth.tokens import issue_access_token
    from chatserver.chat.services import rooms

    started = time.monotonic()
    plan = json.loads(open(plan_path).read())
    call_command("migrate", verbosity=0, interactive=False)
    user_model = get_user_model()
    names = [f"bench{i}" for i in range(plan["users"])]
    existing = set(user_model.objects.filter(username__in=names).values_list("username", flat=True))
    user_model.objects.bulk_create(
        [user_model(username=name, password="!") for name in names if name not in existing],
        batch_size=1000,
    )
    by_name = dict(user_model.objects.filter(username__in=names).values_list("username", "pk"))
    user_ids = [by_name[name] for name in names]
    users = {user.pk: user for user in user_model.objects.filter(pk__in=user_ids)}

    groups = []
    for index, size in enumerate(plan["groups"]):
        change = rooms.create_room(
            users[user_ids[0]],
            {
                "type": "group",
                "name": f"bench group {index} ({size})",
                "members": user_ids[1:size],
                "member_limit": max(2, size),
            },
        )
        groups.append(change.data["room"]["id"])

    pairs = []
    first, count = plan["pairs"]
    for j in range(count):
        a, b = user_ids[first + 2 * j], user_ids[first + 2 * j + 1]
        change = rooms.create_room(users[a], {"type": "direct", "members": [b]})
        pairs.append(change.data["room"]["id"])

    small_groups = []
    first, count, size = plan.get("small_groups") or (0, 0, 0)
    for g in range(count):
        members = user_ids[first + size * g : first + size * (g + 1)]
        small_groups.append(_group(rooms, users, members, f"bench small group {g}"))

    storm_rooms, storm_cursors = _storm(rooms, users, user_ids, plan.get("storm"))
    out = {
        "user_ids": user_ids,
        "tokens": [issue_access_token(users[uid]) for uid in user_ids],
        "groups": groups,
        "pairs": pairs,
        "small_groups": small_groups,
        "storm_rooms": storm_rooms,
        "storm_cursors": storm_cursors,
        "seconds": round(time.monotonic() - started, 2),
    }
    with open(out_path, "w") as handle:
        json.dump(out, handle)


def _group(rooms, users, member_ids, name):
    change = rooms.create_room(
        users[member_ids[0]],
        {
            "type": "group",
            "name": name,
            "members": member_ids[1:],
            "member_limit": max(2, len(member_ids)),
        },
    )
    return change.data["room"]["id"]


def _storm(rooms, users, user_ids, spec):
    """Rooms of the reconnect storm: every storm user in ``rooms_each`` of them, ``backlog``
    messages after the cursors (the seq before them)."""
    from chatserver.chat.models import Room
    from chatserver.chat.services.messages import send_messages

    if not spec:
        return [], {}
    first, count, room_size, rooms_each, backlog = spec
    members = user_ids[first : first + count]
    room_size = max(2, min(room_size, count))
    per_user = [[] for _ in members]
    created = []
    for layer in range(rooms_each):
        shift = (layer * room_size) // max(1, rooms_each)
        order = [(k + shift) % count for k in range(count)]
        chunks = [order[i : i + room_size] for i in range(0, count, room_size)]
        if len(chunks) > 1 and len(chunks[-1]) < 2:  # no room of one: join the previous
            chunks[-2] += chunks.pop()
        for number, chunk in enumerate(chunks):
            room_id = _group(
                rooms, users, [members[k] for k in chunk], f"bench storm {layer}.{number}"
            )
            created.append((room_id, members[chunk[0]]))
            for k in chunk:
                per_user[k].append(room_id)
    ids = [room_id for room_id, _ in created]
    cursors = dict(Room.objects.filter(pk__in=ids).values_list("pk", "last_seq"))
    for offset in range(0, len(created), 200):
        requests = [
            (users[owner], room_id, {"content": f"storm backlog {n}"})
            for room_id, owner in created[offset : offset + 200]
            for n in range(backlog)
        ]
        if requests:
            send_messages(requests)
    return per_user, {str(room_id): seq for room_id, seq in cursors.items()}


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
