"""Rooms through the web client: create a public group, discover and join it, remove and add
members, delete a message, scroll up through a long history, and log out leaving nothing in
the browser's storage."""

import secrets

import pytest

from tests.support.twistd import manage

from .chat_page import contents, expect, message, send, sign_up

pytestmark = pytest.mark.timeout(300)

HISTORY = 130  # more than two pages of room.messages (50 each)


def seed_messages(env, username, room_name, count):
    """Store ``count`` messages in the daemon's database through the chat services."""
    script = (
        "from django.contrib.auth import get_user_model\n"
        "from chatserver.chat.models import Room\n"
        "from chatserver.chat.services.messages import send_messages\n"
        f"user = get_user_model().objects.get(username={username!r})\n"
        f"room = Room.objects.get(name={room_name!r})\n"
        f"numbers = range(1, {count + 1})\n"
        "send_messages([(user, room.pk, {'content': f'old {n}'}) for n in numbers])\n"
    )
    manage(env, "shell", "-c", script)


def test_discover_join_members_history_and_logout(browser, web_daemon):
    see = expect()
    suffix = secrets.token_hex(3)
    carl_name, dora_name, room_name = f"carl{suffix}", f"dora{suffix}", f"Book club {suffix}"
    carl = browser.new_context().new_page()
    dora = browser.new_context().new_page()
    sign_up(carl, web_daemon.url, carl_name)
    sign_up(dora, web_daemon.url, dora_name)

    carl.get_by_role("button", name="New chat").click()
    carl.get_by_label("Room name").fill(room_name)
    carl.get_by_label("Public").check()
    carl.get_by_role("button", name="Create room").click()
    see(carl.locator("#room-title")).to_have_text(room_name)
    seed_messages(web_daemon.env, carl_name, room_name, HISTORY)

    # dora finds the public room by a prefix of its name and joins it.
    dora.get_by_role("button", name="Find rooms").click()
    dora.get_by_role("textbox", name="Find public rooms").fill(f"book club {suffix}")
    see(dora.locator("#panel-results li")).to_have_text([f"{room_name} · 1 memberJoin"])
    dora.get_by_role("button", name=f"Join {room_name}").click()
    see(dora.locator("#room-title")).to_have_text(room_name)

    # Infinite scroll upward: the newest page first, then older pages as she scrolls up.
    see(contents(dora).last).to_have_text(f"old {HISTORY}")
    assert contents(dora).count() < HISTORY
    for _ in range(10):
        if contents(dora).first.text_content() == "old 1":
            break
        count = contents(dora).count()
        dora.locator("#messages").evaluate("box => { box.scrollTop = 0; }")
        see(contents(dora)).not_to_have_count(count)
    see(contents(dora)).to_have_count(HISTORY)
    texts = contents(dora).all_text_contents()
    assert texts == [f"old {n}" for n in range(1, HISTORY + 1)]

    # carl sees her in the member list; a deleted message becomes a tombstone for both.
    carl.get_by_role("button", name="Members").click()
    see(carl.locator("#member-list li", has_text=dora_name)).to_have_count(1)
    send(carl, "oops, wrong room")
    message(carl, "oops, wrong room").get_by_role("button", name="Delete").click()
    see(dora.locator("#messages article.deleted .content")).to_have_text(["Message deleted"])

    # Removed, the room leaves her list; added back through user.search, it returns.
    carl.get_by_role("button", name=f"Remove {dora_name}").click()
    see(dora.locator("#rooms button", has_text=room_name)).to_have_count(0)
    see(dora.locator("#room-title")).to_have_text("Pick a conversation")
    carl.get_by_label("Add someone").fill(dora_name)
    carl.get_by_role("button", name=f"Add {dora_name}").click()
    see(dora.locator("#rooms button", has_text=room_name)).to_have_count(1)

    # Logging out revokes the login and leaves no token in the browser's storage.
    dora.get_by_role("button", name="Log out").click()
    see(dora.get_by_role("button", name="Log in")).to_be_visible()
    see(dora.locator("#rooms li")).to_have_count(0)  # nothing of hers left for the next person
    storage = dora.evaluate("[localStorage.length, sessionStorage.length, document.cookie]")
    assert storage == [0, 0, ""]
