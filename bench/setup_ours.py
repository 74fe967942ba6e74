"""Create the bench's users and rooms for chatserver through its own ORM and services.

Run in our venv with the bench's settings environment (same DB as the servers)::

    python -m bench.setup_ours PLAN.json OUT.json

PLAN: {"users": N, "groups": [size, ...], "pairs": [first_user_index, count]}.
OUT: {"user_ids": [...], "tokens": [...], "groups": [room_id, ...], "pairs": [room_id, ...]}.
User i of the plan is ``bench<i>``; group k has users 0..size-1 (user 0 owns it); pair j joins
users first+2j and first+2j+1.
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

    out = {
        "user_ids": user_ids,
        "tokens": [issue_access_token(users[uid]) for uid in user_ids],
        "groups": groups,
        "pairs": pairs,
        "seconds": round(time.monotonic() - started, 2),
    }
    with open(out_path, "w") as handle:
        json.dump(out, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
