"""A small schema language for server payloads, in the manner of Zulip's event_schema.

Each type checks a decoded JSON value and raises SchemaError naming the path of the first
mismatch (``data.members[0].role: 'boss' is not one of owner, admin, member``). Objects are
exact: a key the schema does not list is a mismatch too, so a new field cannot reach clients
without reaching the catalogue (and, through its test, docs/protocol.md). Only the tests run
these checks; production encodes frames without them.
"""

from datetime import datetime


class SchemaError(AssertionError):
    """A payload that does not match its schema."""


class Type:
    def check(self, value, path="data"):
        raise NotImplementedError


class _Scalar(Type):
    def __init__(self, name, test):
        self.name, self.test = name, test

    def check(self, value, path="data"):
        if not self.test(value):
            raise SchemaError(f"{path}: {value!r} is not {self.name}")

    def __repr__(self):
        return self.name


def _is_time(value):
    """An ISO 8601 date and time with its UTC offset, as datetime.isoformat() writes it."""
    if not isinstance(value, str):
        return False
    try:
        return datetime.fromisoformat(value).utcoffset() is not None
    except ValueError:
        return False


INT = _Scalar("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool))
ID = _Scalar("a positive id", lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0)
STR = _Scalar("a string", lambda v: isinstance(v, str))
BOOL = _Scalar("true or false", lambda v: isinstance(v, bool))
TIME = _Scalar("an ISO 8601 time with a UTC offset", _is_time)
NULL = _Scalar("null", lambda v: v is None)


class Enum(Type):
    """One of a few literal values (strings, or True alone as in ``is_deleted: true``)."""

    def __init__(self, *values):
        self.values = values

    def check(self, value, path="data"):
        if not any(value == v and type(value) is type(v) for v in self.values):
            raise SchemaError(f"{path}: {value!r} is not one of {', '.join(map(str, self.values))}")


class Nullable(Type):
    def __init__(self, inner):
        self.inner = inner

    def check(self, value, path="data"):
        if value is not None:
            self.inner.check(value, path)


class List(Type):
    def __init__(self, item):
        self.item = item

    def check(self, value, path="data"):
        if not isinstance(value, list):
            raise SchemaError(f"{path}: {value!r} is not a list")
        for index, item in enumerate(value):
            self.item.check(item, f"{path}[{index}]")


class Dict(Type):
    """An object with exactly these keys: ``required`` always, ``optional`` when present."""

    def __init__(self, required=None, optional=None):
        self.required = dict(required or {})
        self.optional = dict(optional or {})

    def extend(self, required=None, optional=None):
        """This object with more keys (a member is a user plus role, joined_at, ...)."""
        return Dict({**self.required, **(required or {})}, {**self.optional, **(optional or {})})

    def check(self, value, path="data"):
        if not isinstance(value, dict):
            raise SchemaError(f"{path}: {value!r} is not an object")
        missing = sorted(set(self.required) - set(value))
        if missing:
            raise SchemaError(f"{path}: missing {', '.join(missing)}")
        unknown = sorted(set(value) - set(self.required) - set(self.optional))
        if unknown:
            raise SchemaError(f"{path}: unexpected {', '.join(unknown)}")
        for key, item in value.items():
            (self.required.get(key) or self.optional[key]).check(item, f"{path}.{key}")


class IdMap(Type):
    """``{"<id>": value}``: JSON object keys are strings, so ids arrive as digit strings."""

    def __init__(self, value):
        self.value = value

    def check(self, value, path="data"):
        if not isinstance(value, dict):
            raise SchemaError(f"{path}: {value!r} is not an object")
        for key, item in value.items():
            if not (key.isascii() and key.isdigit() and int(key) > 0):
                raise SchemaError(f"{path}: key {key!r} is not an id")
            self.value.check(item, f"{path}.{key}")


class OneOf(Type):
    """The first alternative that matches; the error lists why each failed."""

    def __init__(self, *choices):
        self.choices = choices

    def check(self, value, path="data"):
        reasons = []
        for choice in self.choices:
            try:
                choice.check(value, path)
                return
            except SchemaError as error:
                reasons.append(str(error))
        raise SchemaError(" / ".join(reasons))
