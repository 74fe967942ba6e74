"""Client payload validation: the field validators the catalogue's client events use.

Each validator takes ``(name, value)`` and returns the cleaned value, or raises ProtocolError
4003 with a sentence naming the field; ``ClientEvent.clean`` applies an event's validators and
refuses fields it does not list.
"""

import re
from datetime import datetime

import emoji

from ..conf import option
from .codes import ERROR_VALIDATION

MAX_ID = 2**63 - 1
MAX_LIST_ITEMS = 100


class ProtocolError(Exception):
    """A request the server refuses; turned into one error frame by the consumer."""

    def __init__(self, code, detail):
        super().__init__(detail)
        self.code = code
        self.detail = detail


def invalid(detail):
    return ProtocolError(ERROR_VALIDATION, detail)


# -- field validators: each takes (name, value) and returns the cleaned value ---------------


def _limit(value):
    """A limit given as a number or as the name of an option (read when validating)."""
    return option(value) if isinstance(value, str) else value


def is_ascii_number(text):
    """Digits 0-9 only: ``str.isdigit`` also takes "²" and "١", which ``int()`` then refuses or
    reads as another number, and ``int()`` alone takes " 1", "+1" and "1_0"."""
    return text.isascii() and text.isdigit()


def id_field(name, value):
    """A positive integer id; digit strings are accepted because JSON object keys are strings."""
    if isinstance(value, str) and is_ascii_number(value) and len(value) <= 19:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise invalid(f"'{name}' must be a positive integer id.")
    return value


def ids_field(name, value, allow_empty=False):
    """A list of distinct ids (order kept), at most MAX_LIST_ITEMS long."""
    if not isinstance(value, list) or not (value or allow_empty):
        raise invalid(f"'{name}' must be a non-empty list of ids.")
    if len(value) > MAX_LIST_ITEMS:
        raise invalid(f"'{name}' holds at most {MAX_LIST_ITEMS} ids.")
    return list(dict.fromkeys(id_field(name, item) for item in value))


def ids_or_empty_field(name, value):
    return ids_field(name, value, allow_empty=True)


# What no database column can hold: PostgreSQL text refuses U+0000, and an unpaired surrogate
# (a JSON escape such as "\ud800" alone) has no UTF-8 form. Stored in a batch, either would
# fail the whole batch, other users' messages with it.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_field(max_length, blank=False):
    def check(name, value):
        limit = _limit(max_length)
        if not isinstance(value, str):
            raise invalid(f"'{name}' must be a string.")
        if _UNSTORABLE.search(value):
            raise invalid(f"'{name}' must not contain U+0000 or unpaired surrogates.")
        if not blank and not value.strip():
            raise invalid(f"'{name}' must not be blank.")
        if len(value) > limit:
            raise invalid(f"'{name}' is longer than {limit} characters.")
        return value

    return check


def emoji_field(name, value):
    """Exactly one emoji (one grapheme cluster: skin tones, ZWJ sequences and flags count as
    one), as the ``emoji`` package's Unicode tables know them; nothing else is a reaction."""
    text_field(32)(name, value)
    if not emoji.is_emoji(value):
        raise invalid(f"'{name}' must be exactly one emoji.")
    return value


def bool_field(name, value):
    if not isinstance(value, bool):
        raise invalid(f"'{name}' must be true or false.")
    return value


def int_field(minimum, maximum):
    def check(name, value):
        top = _limit(maximum)
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= top:
            raise invalid(f"'{name}' must be an integer from {minimum} to {top}.")
        return value

    return check


def datetime_field(name, value):
    """An ISO 8601 date and time with its UTC offset ("2030-01-01T12:00:00+00:00" or "...Z")."""
    if not isinstance(value, str) or len(value) > 40:
        raise invalid(f"'{name}' must be an ISO 8601 date and time with a UTC offset.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.utcoffset() is None:
        raise invalid(f"'{name}' must be an ISO 8601 date and time with a UTC offset.")
    return parsed


def choice_field(*choices):
    def check(name, value):
        if value not in choices:
            raise invalid(f"'{name}' must be one of {', '.join(choices)}.")
        return value

    return check


def cursor_map_field(max_items):
    """``{"<room_id>": <seq>, ...}``: the shape of session.resume, message.read and acks."""

    def check(name, value):
        top = _limit(max_items)
        if not isinstance(value, dict) or not value:
            raise invalid(f"'{name}' must be a non-empty object of room id to seq.")
        if len(value) > top:
            raise invalid(f"'{name}' holds at most {top} rooms.")
        seq = int_field(0, MAX_ID)
        return {id_field(name, key): seq(f"{name}.{key}", item) for key, item in value.items()}

    return check


SEARCH_MIN_LENGTH = 2
SEARCH_MAX_LENGTH = 100
DISCOVER_MAX_LIMIT = 50


def search_field(name, value):
    """A search prefix: at least SEARCH_MIN_LENGTH characters once blanks are trimmed, so one
    letter cannot page through the whole user table."""
    value = text_field(SEARCH_MAX_LENGTH)(name, value).strip()
    if len(value) < SEARCH_MIN_LENGTH:
        raise invalid(f"'{name}' needs at least {SEARCH_MIN_LENGTH} characters.")
    return value
