"""axe-core (vendored from the npm registry, see vendor/README.md) finds no serious or critical
accessibility violation on the login page and on a conversation, in light mode at desktop width
and in dark mode at phone width."""

import secrets
from pathlib import Path

import pytest

from .chat_page import expect, send, sign_up

pytestmark = pytest.mark.timeout(300)

AXE = Path(__file__).with_name("vendor") / "axe.min.js"


def violations(page):
    """Serious and critical axe violations, one line each."""
    page.evaluate(AXE.read_text(encoding="utf-8"))  # devtools evaluation: not subject to CSP
    results = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['impact']} {v['id']}: {v['help']} ({len(v['nodes'])} nodes: "
        f"{[node['target'] for node in v['nodes'][:3]]})"
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize(("scheme", "width"), [("light", 1024), ("dark", 390)])
def test_login_and_chat_pages_have_no_serious_violations(browser, web_daemon, scheme, width):
    context = browser.new_context(color_scheme=scheme, viewport={"width": width, "height": 700})
    page = context.new_page()
    page.goto(web_daemon.url + "/")
    expect()(page.get_by_role("button", name="Log in")).to_be_visible()
    assert violations(page) == []

    name = f"axe{scheme}{secrets.token_hex(3)}"
    sign_up(page, web_daemon.url, name)
    page.get_by_text("My account").click()  # the user menu, open from here on (checked at desktop)
    expect()(page.get_by_label("Hide my presence")).to_be_visible()
    page.get_by_role("button", name="New chat").click()
    page.get_by_label("Room name").fill("Accessible room")
    page.get_by_role("button", name="Create room").click()
    expect()(page.locator("#room-title")).to_have_text("Accessible room")
    send(page, "Contrast check https://example.org")
    message = page.locator("#messages article", has_text="Contrast check")
    message.get_by_role("button", name="React 👍").click()
    expect()(message.locator(".reactions button")).to_have_count(1)
    page.get_by_role("button", name="Members").click()
    page.get_by_role("button", name="Room settings").click()
    assert violations(page) == []
    message.get_by_role("button", name="Forward").click()  # the dialog over the page
    expect()(page.get_by_role("dialog", name="Forward to…")).to_be_visible()
    assert violations(page) == []
    context.close()
