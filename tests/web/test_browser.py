"""Two people chat in two browser windows against the real daemon, through the web client.

Everything goes through the page as a person would use it: sign up, find each other with
user.search, open a one-to-one room, chat, react, edit, see typing and "Seen by". Then one
window goes offline while the other writes: back online it shows every message once, in order
(session.resume by seq). A message written offline is shown pending and arrives once back.
"""

import secrets

import pytest

from .chat_page import contents, expect, message, send, sign_up

pytestmark = pytest.mark.timeout(300)


def test_two_people_chat_and_lose_nothing_offline(browser, web_daemon, artifacts):
    see = expect()
    suffix = secrets.token_hex(3)
    ann_name, ben_name = f"ann{suffix}", f"ben{suffix}"
    ann_ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    ben_ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    ann, ben = ann_ctx.new_page(), ben_ctx.new_page()
    errors = []
    for page in (ann, ben):
        page.on("pageerror", lambda error: errors.append(str(error)))
        # A Content-Security-Policy violation is reported on the console.
        page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    sign_up(ann, web_daemon.url, ann_name)
    sign_up(ben, web_daemon.url, ben_name)

    # ann finds ben by a prefix of his name and opens a one-to-one room.
    ann.get_by_role("button", name="New chat").click()
    ann.get_by_role("textbox", name="Find people").fill(ben_name[:5])
    ann.get_by_role("button", name=f"Chat {ben_name}").click()
    see(ann.locator("#room-title")).to_have_text(ben_name)
    send(ann, "Hello Ben, see https://example.org/docs.")
    see(contents(ann)).to_have_text(["Hello Ben, see https://example.org/docs."])
    link = message(ann, "Hello Ben").get_by_role("link")
    see(link).to_have_attribute("href", "https://example.org/docs")
    see(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    see(ann.get_by_role("separator")).to_have_count(1)  # the day's heading above its messages

    # ben sees the room appear with an unread badge, opens it, and both see typing and receipts.
    room = ben.locator("#rooms button", has_text=ann_name)
    see(room.locator(".badge")).to_have_text("1")
    room.click()
    see(contents(ben)).to_have_text(["Hello Ben, see https://example.org/docs."])
    see(room.locator(".badge")).to_have_count(0)
    see(ann.locator(".seen")).to_have_text(f"Seen by {ben_name}")
    ben.get_by_label("Message").press_sequentially("Hi", delay=50)
    see(ann.locator("#typing")).to_have_text(f"{ben_name} is typing…")
    ben.get_by_label("Message").fill("Hi Ann <b>not bold</b> javascript:alert(1)")
    ben.get_by_label("Message").press("Enter")
    see(contents(ann)).to_have_text(
        ["Hello Ben, see https://example.org/docs.", "Hi Ann <b>not bold</b> javascript:alert(1)"]
    )
    see(ann.locator("#typing")).to_have_text("")
    assert message(ann, "Hi Ann").locator("b").count() == 0  # text, never markup
    assert message(ann, "Hi Ann").get_by_role("link").count() == 0  # only http(s) links
    see(ben.locator(".seen")).to_have_text(f"Seen by {ann_name}")

    # A reaction and an edit travel both ways.
    message(ann, "Hi Ann").get_by_role("button", name="React 👍").click()
    see(message(ben, "Hi Ann").locator(".reactions button")).to_have_text(["👍 1"])
    message(ann, "Hello Ben").get_by_role("button", name="Edit").click()
    send(ann, "Hello Ben (edited)")
    see(message(ben, "Hello Ben (edited)").locator(".edited")).to_have_text("(edited)")

    # Reply: the quote of the parent shows above the answer.
    message(ben, "Hello Ben (edited)").get_by_role("button", name="Reply").click()
    send(ben, "Replying here")
    see(message(ann, "Replying here").locator(".quote")).to_contain_text("Hello Ben (edited)")

    # ben goes offline; ann writes three messages; ben comes back and has each once, in order.
    ben_ctx.set_offline(True)
    see(ben.locator("#status")).to_have_text("Offline")
    for n in range(1, 4):
        send(ann, f"while you were away {n}")
    see(contents(ann).last).to_have_text("while you were away 3")
    ben_ctx.set_offline(False)
    expected = [
        "Hello Ben (edited)",
        "Hi Ann <b>not bold</b> javascript:alert(1)",
        "Replying here",
        "while you were away 1",
        "while you were away 2",
        "while you were away 3",
    ]
    see(contents(ben)).to_have_text(expected)
    see(ben.locator("#status")).to_have_text("")

    # ann writes while offline: shown pending, sent once she is back, arrives once.
    ann_ctx.set_offline(True)
    see(ann.locator("#status")).to_have_text("Offline")
    send(ann, "written offline")
    see(ann.locator("#messages article.pending .content")).to_have_text(["written offline"])
    ann_ctx.set_offline(False)
    see(ann.locator("#messages article.pending")).to_have_count(0)
    see(contents(ann).last).to_have_text("written offline")
    see(contents(ben)).to_have_text([*expected, "written offline"])
    see(contents(ann)).to_have_text([*expected, "written offline"])

    artifacts("chat-desktop.png", ben.screenshot())
    ben.set_viewport_size({"width": 390, "height": 844})
    see(ben.locator("#back-button")).to_be_visible()
    artifacts("chat-phone.png", ben.screenshot())
    assert errors == []
    ann_ctx.close()
    ben_ctx.close()
