"""Helpers that use the web client as a person would: through labels, roles and text."""

import secrets

from tests.support.twistd import manage

PASSWORD = "Correct-Horse-" + secrets.token_hex(4)
TIMEOUT = 20_000  # ms: generous, the machine is shared


def expect():
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=TIMEOUT)
    return playwright_expect


def sign_up(page, base, username):
    page.goto(base + "/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect()(page.locator("#me")).to_have_text(username)
    expect()(page.locator("#status")).to_have_text("")  # connected


def create_users(env, *usernames):
    """Users made in the daemon's database, for tests about something other than sign-up (which
    the daemon limits per address and hour: see chatserver/web/signup_throttle.py)."""
    script = (
        "from django.contrib.auth import get_user_model\n"
        f"for name in {list(usernames)!r}:\n"
        f"    get_user_model().objects.create_user(username=name, password={PASSWORD!r})\n"
    )
    manage(env, "shell", "-c", script)


def log_in(page, base, username):
    page.goto(base + "/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect()(page.locator("#me")).to_have_text(username)
    expect()(page.locator("#status")).to_have_text("")  # connected


def contents(page):
    return page.locator("#messages article:not(.pending) .content")


def message(page, text):
    return page.locator("#messages article", has_text=text)


def send(page, text):
    box = page.get_by_label("Message")
    box.fill(text)
    box.press("Enter")
