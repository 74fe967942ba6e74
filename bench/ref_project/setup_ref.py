"""Create the bench's users and rooms for the reference package (run in bench/.venv-ref).

Same PLAN/OUT format as ``bench/setup_ours.py``. Rooms go through the package's models and
signals (room property, guardian permissions, member limits); each user's group list is written
to the cache under the package's key, as its ``add_channel_to_group`` would.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refbench.settings")


def main(plan_path, out_path):
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.core.management import call_command
    from realtime_chat_messaging.models import GroupChat, OneToOneChat
    from refbench.auth import issue_token

    started = time.monotonic()
    plan = json.loads(open(plan_path).read())
    call_command("migrate", verbosity=0, interactive=False)
    user_model = get_user_model()
    names = [f"bench{i}" for i in range(plan["users"])]
    user_model.objects.bulk_create(
        [user_model(username=name, password="!") for name in names],
        batch_size=1000,
        ignore_conflicts=True,
    )
    by_name = dict(user_model.objects.filter(username__in=names).values_list("username", "pk"))
    user_ids = [by_name[name] for name in names]
    memberships = {uid: [f"user-{uid}"] for uid in user_ids}

    groups = []
    for index, size in enumerate(plan["groups"]):
        room = GroupChat.objects.create(
            name=f"bench group {index}",
            creator_id=user_ids[0],
            max_participants=max(size, 2),
        )
        room.participants.add(*user_ids[1:size])
        groups.append(str(room.pk))
        for uid in user_ids[:size]:
            memberships[uid].append(f"group-{room.pk}")

    pairs = []
    first, count = plan["pairs"]
    for j in range(count):
        a, b = user_ids[first + 2 * j], user_ids[first + 2 * j + 1]
        # A later round finds the pair's chat: the reference allows one per pair.
        room = OneToOneChat.objects.filter(participants=a).filter(participants=b).first()
        if room is None:
            room = OneToOneChat.objects.create()
            room.participants.add(a, b)
        pairs.append(str(room.pk))
        memberships[a].append(f"group-{room.pk}")
        memberships[b].append(f"group-{room.pk}")

    cache.set_many(
        {f"user:{uid}:groups": json.dumps(groups_) for uid, groups_ in memberships.items()},
        timeout=None,
    )
    out = {
        "user_ids": user_ids,
        "tokens": [issue_token(uid) for uid in user_ids],
        "groups": groups,
        "pairs": pairs,
        "seconds": round(time.monotonic() - started, 2),
    }
    with open(out_path, "w") as handle:
        json.dump(out, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
