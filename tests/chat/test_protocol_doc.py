"""docs/protocol.md is the contract: it must say what the event catalogue defines.

Client events with their writable fields, server events, error codes and close codes (with
their names) are compared both ways; every event has one example, and every example frame in
the doc is checked: client examples against their event's validators, server examples against
their event's payload schema.
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
    SchemaError,
    check_server_frame,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
TEXT = DOC.read_text(encoding="utf-8")


def sections(level, text):
    """``{heading: body}`` for headings of one level (``##`` or ``###``)."""
    marker = "#" * level + " "
    parts = re.split(rf"^{marker}(.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def subsections(name):
    body = sections(2, TEXT)[name]
    return {re.fullmatch(r"`(.+)`", k).group(1): v for k, v in sections(3, body).items()}


def table_rows(body):
    """``{first cell: second cell}`` of the table rows whose first cell is in backticks."""
    rows = re.finditer(r"^\| `([^`]+)` \| ([^|]*) \|", body, flags=re.M)
    return {m.group(1): m.group(2).strip() for m in rows}


def examples(body):
    return [json.loads(block) for block in re.findall(r"```json\n(.+?)\n```", body, flags=re.S)]


def check_client_frame(frame):
    try:
        CLIENT_EVENTS[frame["event_type"]].clean(frame.get("data", {}))
    except ProtocolError as error:  # pragma: no cover - the message is the point
        pytest.fail(f"example of {frame['event_type']} does not validate: {error.detail}")


def test_client_events_match():
    assert set(subsections("Client events")) == set(CLIENT_EVENTS)


def test_server_events_match():
    assert set(subsections("Server events")) == set(SERVER_EVENTS)


@pytest.mark.parametrize("name", sorted(CLIENT_EVENTS))
def test_client_event_fields_and_example(name):
    body = subsections("Client events")[name]
    assert set(table_rows(body)) == set(CLIENT_EVENTS[name].fields)
    (example,) = examples(body)
    assert example["event_type"] == name
    check_client_frame(example)


@pytest.mark.parametrize("name", sorted(SERVER_EVENTS))
def test_server_event_example_matches_its_schema(name):
    (example,) = examples(subsections("Server events")[name])
    assert example["eventType"] == name
    check_server_frame(example)


def test_every_example_frame_in_the_doc_is_valid():
    """The examples outside the event sections too (Frames, Ordering, ...)."""
    frames = examples(TEXT)
    assert len(frames) >= len(CLIENT_EVENTS) + len(SERVER_EVENTS)
    for frame in frames:
        if "event_type" in frame:
            check_client_frame(frame)
        else:
            check_server_frame(frame)


def test_every_event_the_doc_names_exists():
    """A ``something.dispatch`` named anywhere in the prose is a server event."""
    named = set(re.findall(r"`([a-z]+\.dispatch)`", TEXT))
    assert named <= set(SERVER_EVENTS), named - set(SERVER_EVENTS)


def test_error_codes_match():
    rows = table_rows(sections(2, TEXT)["Error codes"])
    assert {int(code): name for code, name in rows.items()} == ERROR_CODES


def test_close_codes_match():
    rows = table_rows(sections(2, TEXT)["Close codes"])
    assert {int(code): name for code, name in rows.items()} == CLOSE_CODES


def test_a_frame_off_its_schema_is_refused():
    """The schema check the chat tests rely on (conftest.py) can fail: an unknown field, a
    missing one, a wrong type, an unknown event and a bad nested frame are all caught."""
    good = {"eventType": "presencesetting.dispatch", "data": {"hidden": True}}
    check_server_frame(good)
    bad_frames = [
        {**good, "data": {"hidden": True, "extra": 1}},
        {**good, "data": {}},
        {**good, "data": {"hidden": "yes"}},
        {**good, "request_id": 7},
        {"eventType": "nothing.dispatch", "data": {}},
        {"eventType": "error", "data": {}},
        {
            "eventType": "session.resume",
            "data": {
                "rooms": {
                    "12": {
                        "events": [{"eventType": "messagetyping.dispatch", "data": {}}],
                        "limited": False,
                        "next_after": 0,
                        "last_seq": 0,
                    }
                },
                "missing": [],
                "has_more": False,
            },
        },
    ]
    for frame in bad_frames:
        with pytest.raises(SchemaError):
            check_server_frame(frame)


def test_every_rate_class_has_a_bucket():
    """A client event's rate class names a RATE_LIMITS bucket (the doc lists them)."""
    from chatserver.chat.conf import DEFAULTS

    assert {event.rate_class for event in CLIENT_EVENTS.values()} <= set(DEFAULTS["RATE_LIMITS"])


def test_every_handler_is_in_the_catalogue():
    """The handler table is built from the catalogue; a public coroutine in chat/handlers/
    that no client event names would be a handler nobody can reach."""
    import importlib
    import inspect
    import pkgutil

    from chatserver.chat import handlers

    defined = set()
    for info in pkgutil.iter_modules(handlers.__path__):
        module = importlib.import_module(f"{handlers.__name__}.{info.name}")
        defined.update(
            function
            for name, function in vars(module).items()
            if inspect.iscoroutinefunction(function)
            and function.__module__ == module.__name__
            and not name.startswith("_")
        )
    assert defined == set(handlers.HANDLERS.values())
    assert handlers.PIPELINED == {"message.send"}
