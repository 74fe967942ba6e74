"""user.search and room.discover: finding people and public rooms through the protocol."""

import pytest
from asgiref.sync import sync_to_async

pytestmark = pytest.mark.django_db(transaction=True)


def names(reply):
    return [user["username"] for user in reply["users"]]


async def test_search_matches_username_and_name_prefixes_case_insensitively(
    connect, users, make_user
):
    await sync_to_async(make_user)("carlos", first_name="Zed", last_name="Quux")
    await sync_to_async(make_user)("zoe", first_name="Carmen", last_name="Díaz")
    await sync_to_async(make_user)("xavier", first_name="Ann", last_name="Carter")
    alice = await connect(users.alice)
    reply = await alice.ok("user.search", {"query": "  cAr "}, "usersearch.dispatch")
    assert reply["query"] == "cAr"
    assert names(reply) == ["carlos", "carol", "xavier", "zoe"]
    # The full name counts too, and only id, username and display name are sent.
    (ann,) = (await alice.ok("user.search", {"query": "ann car"}))["users"]
    assert ann == {"id": ann["id"], "username": "xavier", "display_name": "Ann Carter"}
    assert names(await alice.ok("user.search", {"query": "nobody"})) == []


async def test_search_leaves_out_self_inactive_and_users_who_blocked_the_searcher(connect, users):
    users.dave.is_active = False
    await users.dave.asave()
    erin = await connect(users.erin)
    await erin.ok("user.block", {"user_id": users.alice.pk})
    alice = await connect(users.alice)
    # Every fixture user's last name is "Example".
    found = names(await alice.ok("user.search", {"query": "Example"}))
    assert found == ["bob", "carol"]
    # alice blocking bob does not hide bob from alice (only the other way round).
    await alice.ok("user.block", {"user_id": users.bob.pk})
    assert names(await alice.ok("user.search", {"query": "bo"})) == ["bob"]
    assert names(await erin.ok("user.search", {"query": "al"})) == ["alice"]


async def test_search_never_sends_email_and_caps_results(connect, users, make_user):
    for n in range(25):
        await sync_to_async(make_user)(f"sam{n:02}", email=f"secret{n}@example.org")
    alice = await connect(users.alice)
    reply = await alice.ok("user.search", {"query": "sam"})
    assert len(reply["users"]) == 20
    assert names(reply) == [f"sam{n:02}" for n in range(20)]
    assert "@" not in str(reply)
    # An e-mail address is not a search key either.
    assert names(await alice.ok("user.search", {"query": "secret"})) == []


@pytest.mark.parametrize("query", ["", "a", " b ", 5, None, "x" * 101, "a\x00b"])
async def test_search_query_must_be_two_to_a_hundred_characters(connect, users, query):
    alice = await connect(users.alice)
    assert await alice.error("user.search", {"query": query}) == 4003


async def test_search_prefix_wildcards_are_literal(connect, users, make_user):
    await sync_to_async(make_user)("a_b")
    await sync_to_async(make_user)("axb")
    alice = await connect(users.alice)
    assert names(await alice.ok("user.search", {"query": "a_"})) == ["a_b"]
    assert names(await alice.ok("user.search", {"query": "%b"})) == []


async def make_room(client, name, public=True, kind="group"):
    data = {"type": kind, "name": name, "is_public": public}
    return (await client.ok("room.create", data))["room"]["id"]


async def test_discover_lists_public_rooms_by_activity_with_member_counts(connect, users):
    alice, bob = await connect(users.alice), await connect(users.bob)
    older = await make_room(alice, "Project Old")
    news = await make_room(alice, "news", kind="channel")
    await make_room(alice, "Project Secret", public=False)
    newer = await make_room(bob, "project new")
    await alice.ok("message.send", {"room_id": older, "content": "bump"})
    await alice.ok("room.create", {"type": "direct", "members": [users.dave.pk]})
    await bob.ok("room.join", {"room_id": older})
    await alice.expect("roomaddmembers.dispatch")

    carol = await connect(users.carol)
    page = await carol.ok("room.discover", {}, "roomdiscover.dispatch")
    assert [room["id"] for room in page["rooms"]] == [older, newer, news]
    assert page["has_more"] is False and page["next_before"] is None
    first = page["rooms"][0]
    assert first["name"] == "Project Old" and first["member_count"] == 2
    assert first["is_member"] is False and first["is_public"] is True

    found = await alice.ok("room.discover", {"query": "PROJ"})
    assert [(r["id"], r["is_member"]) for r in found["rooms"]] == [(older, True), (newer, False)]


async def test_discover_pages_by_cursor_without_repeats(connect, users):
    alice = await connect(users.alice)
    made = [await make_room(alice, f"room {n}") for n in range(5)]
    bob = await connect(users.bob)
    seen, cursor = [], None
    while True:
        data = {"limit": 2} if cursor is None else {"limit": 2, "before": cursor}
        page = await bob.ok("room.discover", data)
        seen += [room["id"] for room in page["rooms"]]
        if not page["has_more"]:
            break
        cursor = page["next_before"]
    assert seen == made[::-1]


@pytest.mark.parametrize(
    "data", [{"before": "nope"}, {"before": "1:0"}, {"limit": 0}, {"limit": 51}, {"query": 3}]
)
async def test_discover_refuses_bad_cursors_and_limits(connect, users, data):
    alice = await connect(users.alice)
    assert await alice.error("room.discover", data) == 4003
