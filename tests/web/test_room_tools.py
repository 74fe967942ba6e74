"""Presence dots, forwarding and room settings through the web client, against the real daemon.

Presence: two people in a one-to-one room see each other online, hidden (presence.hide; a new
login shows the stored setting) and, once one window closes, offline. Forward: a message
forwarded to another room arrives there marked "Forwarded". Settings: the owner renames and
locks a group; a member sees the change, no settings, and cannot write in the locked group until
made an admin; the owner deletes it."""

import secrets

import pytest

from .chat_page import contents, create_users, expect, log_in, message, send

pytestmark = pytest.mark.timeout(300)


def dot(page, where, name):
    """The presence dot (its text: online / away / offline) of ``name`` in ``where``."""
    return page.locator(where, has_text=name).locator(".presence")


def test_presence_dots_follow_hiding_and_closing(browser, web_daemon):
    see = expect()
    suffix = secrets.token_hex(3)
    ada_name, bob_name = f"ada{suffix}", f"bob{suffix}"
    ada_ctx = browser.new_context()
    bob_ctx = browser.new_context()
    ada, bob = ada_ctx.new_page(), bob_ctx.new_page()
    create_users(web_daemon.env, ada_name, bob_name)
    log_in(ada, web_daemon.url, ada_name)
    log_in(bob, web_daemon.url, bob_name)

    ada.get_by_role("button", name="New chat").click()
    ada.get_by_role("textbox", name="Find people").fill(bob_name)
    ada.get_by_role("button", name=f"Chat {bob_name}").click()
    see(ada.locator("#room-title")).to_have_text(bob_name)

    # bob's list gains the room; his subscription, renewed for it, shows ada online.
    room = bob.locator("#rooms button", has_text=ada_name)
    see(dot(bob, "#rooms button", ada_name)).to_have_text("online")
    see(dot(ada, "#rooms button", bob_name)).to_have_text("online")
    room.click()
    bob.get_by_role("button", name="Members").click()
    see(dot(bob, "#member-list li", ada_name)).to_have_text("online")

    # bob's network drops: ada sees him offline; back, he is online and subscribed again (the
    # changes below reach his new socket only through the renewed subscription).
    bob_ctx.set_offline(True)
    see(bob.locator("#status")).to_have_text("Offline")
    see(dot(ada, "#rooms button", bob_name)).to_have_text("offline")
    bob_ctx.set_offline(False)
    see(bob.locator("#status")).to_have_text("")
    see(dot(ada, "#rooms button", bob_name)).to_have_text("online")

    # ada hides her presence from the user menu: bob sees her offline, then online again.
    ada.get_by_text("My account").click()
    ada.get_by_label("Hide my presence").check()
    see(dot(bob, "#rooms button", ada_name)).to_have_text("offline")
    # A new login of hers (another window) shows the box as stored: checked.
    again_ctx = browser.new_context()
    again = again_ctx.new_page()
    log_in(again, web_daemon.url, ada_name)
    again.get_by_text("My account").click()
    see(again.get_by_label("Hide my presence")).to_be_checked()
    again_ctx.close()
    ada.get_by_label("Hide my presence").uncheck()
    see(dot(bob, "#rooms button", ada_name)).to_have_text("online")

    # Her window closes: her socket goes and bob sees her offline.
    ada_ctx.close()
    see(dot(bob, "#rooms button", ada_name)).to_have_text("offline")
    see(dot(bob, "#member-list li", ada_name)).to_have_text("offline")


def watch_errors(page, errors):
    """Collect script errors and console errors (a Content-Security-Policy violation is one)."""
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    return page


def create_group(page, name, public=False):
    page.get_by_role("button", name="New chat").click()
    page.get_by_label("Room name").fill(name)
    if public:
        page.get_by_label("Public").check()
    page.get_by_role("button", name="Create room").click()
    expect()(page.locator("#room-title")).to_have_text(name)


def test_forward_a_message_to_another_room(browser, web_daemon):
    see = expect()
    suffix = secrets.token_hex(3)
    errors = []
    page = watch_errors(browser.new_context().new_page(), errors)
    create_users(web_daemon.env, f"fay{suffix}")
    log_in(page, web_daemon.url, f"fay{suffix}")
    create_group(page, f"Target {suffix}")
    create_group(page, f"Source {suffix}")
    send(page, "Worth passing on")
    see(contents(page)).to_have_text(["Worth passing on"])
    assert page.locator("#messages .forwarded").count() == 0

    message(page, "Worth passing on").get_by_role("button", name="Forward").click()
    dialog = page.get_by_role("dialog", name="Forward to…")
    see(dialog.get_by_role("button")).to_have_text([f"Target {suffix}", "Cancel"])
    dialog.get_by_role("button", name=f"Target {suffix}").click()
    see(dialog).to_be_hidden()

    page.locator("#rooms button", has_text=f"Target {suffix}").click()
    see(page.locator("#room-title")).to_have_text(f"Target {suffix}")
    see(contents(page)).to_have_text(["Worth passing on"])
    see(message(page, "Worth passing on").locator(".forwarded")).to_have_text("Forwarded")
    assert errors == []


def test_owner_renames_locks_and_deletes_a_group_a_member_sees_no_settings(browser, web_daemon):
    see = expect()
    suffix = secrets.token_hex(3)
    olga_name, pete_name = f"olga{suffix}", f"pete{suffix}"
    room_name, new_name = f"Garden {suffix}", f"Allotment {suffix}"
    errors = []
    olga = watch_errors(browser.new_context().new_page(), errors)
    pete = watch_errors(browser.new_context().new_page(), errors)
    create_users(web_daemon.env, olga_name, pete_name)
    log_in(olga, web_daemon.url, olga_name)
    log_in(pete, web_daemon.url, pete_name)
    create_group(olga, room_name, public=True)

    pete.get_by_role("button", name="Find rooms").click()
    pete.get_by_role("textbox", name="Find public rooms").fill(room_name)
    pete.get_by_role("button", name=f"Join {room_name}").click()
    see(pete.locator("#room-title")).to_have_text(room_name)
    see(pete.get_by_role("button", name="Members")).to_be_visible()
    see(pete.get_by_role("button", name="Room settings")).to_have_count(0)
    see(pete.get_by_label("Message")).to_be_visible()

    # The owner renames and locks the group: the member sees the new name and may not write.
    olga.get_by_role("button", name="Room settings").click()
    olga.get_by_label("Rename room").fill(new_name)
    olga.get_by_label("Locked").check()
    olga.get_by_role("button", name="Save settings").click()
    see(olga.locator("#room-title")).to_have_text(new_name)
    see(pete.locator("#room-title")).to_have_text(new_name)
    see(pete.locator("#rooms button", has_text=new_name)).to_have_count(1)
    see(pete.get_by_text("Only admins can write in this room.")).to_be_visible()
    see(pete.get_by_label("Message")).to_be_hidden()
    see(olga.get_by_label("Message")).to_be_visible()
    see(pete.get_by_role("button", name="Room settings")).to_have_count(0)

    # Made an admin, he gets the settings and may write again.
    olga.get_by_role("button", name="Members").click()
    olga.get_by_role("button", name=f"Make {pete_name} admin").click()
    see(olga.get_by_role("button", name=f"Revoke admin from {pete_name}")).to_be_visible()
    see(pete.get_by_role("button", name="Room settings")).to_be_visible()
    see(pete.get_by_label("Message")).to_be_visible()

    # The owner deletes the room (a second, confirming click): it leaves both lists.
    olga.get_by_role("button", name="Room settings").click()
    olga.get_by_role("button", name="Delete room").click()
    olga.get_by_role("button", name="Delete for everyone").click()
    see(olga.locator("#rooms button", has_text=new_name)).to_have_count(0)
    see(pete.locator("#rooms button", has_text=new_name)).to_have_count(0)
    see(pete.locator("#room-title")).to_have_text("Pick a conversation")
    assert errors == []
