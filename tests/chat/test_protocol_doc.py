"""docs/protocol.md is the contract: it must name exactly what protocol.py defines.

Client events, their writable fields, server events, error codes and close codes are compared
both ways, and every example frame must parse (client examples must also pass validation).
"""

import json
import re
from pathlib import Path

import pytest

from chatserver.chat.protocol import (
    CLIENT_EVENTS,
    CLOSE_CODES,
    ERROR_CODES,
    SERVER_EVENTS,
    ProtocolError,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def sections(level, text):
    """``{heading: body}`` for headings of one level (``##`` or ``###``)."""
    marker = "#" * level + " "
    parts = re.split(rf"^{marker}(.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def subsections(name):
    body = sections(2, DOC.read_text(encoding="utf-8"))[name]
    return {re.fullmatch(r"`(.+)`", k).group(1): v for k, v in sections(3, body).items()}


def table_keys(body):
    return {m.group(1) for m in re.finditer(r"^\| `([^`]+)` \|", body, flags=re.M)}


def examples(body):
    return [json.loads(block) for block in re.findall(r"```json\n(.+?)\n```", body, flags=re.S)]


def test_client_events_match():
    assert set(subsections("Client events")) == set(CLIENT_EVENTS)


def test_server_events_match():
    assert set(subsections("Server events")) == set(SERVER_EVENTS)


@pytest.mark.parametrize("name", sorted(CLIENT_EVENTS))
def test_client_event_fields_and_example(name):
    body = subsections("Client events")[name]
    assert table_keys(body) == set(CLIENT_EVENTS[name].fields)
    (example,) = examples(body)
    assert example["event_type"] == name
    try:
        CLIENT_EVENTS[name].clean(example["data"])
    except ProtocolError as error:  # pragma: no cover - the message is the point
        pytest.fail(f"example of {name} does not validate: {error.detail}")


@pytest.mark.parametrize("name", sorted(SERVER_EVENTS))
def test_server_event_example(name):
    (example,) = examples(subsections("Server events")[name])
    assert example["eventType"] == name


def test_error_codes_match():
    body = sections(2, DOC.read_text(encoding="utf-8"))["Error codes"]
    assert {int(code) for code in table_keys(body)} == set(ERROR_CODES)


def test_close_codes_match():
    body = sections(2, DOC.read_text(encoding="utf-8"))["Close codes"]
    assert {int(code) for code in table_keys(body)} == set(CLOSE_CODES)
