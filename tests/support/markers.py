"""Which tests are end to end: those that run processes, through the launchers here (twistd,
the ``chatserver`` command, nginx) or ``subprocess`` itself, directly or through the helpers,
classes and fixtures of the tests that they call. Read from the code, so a new test is marked
by itself."""

import inspect
import subprocess
import types

from . import nginx, twistd

LAUNCHERS = (
    twistd.BIN,
    twistd.Daemon,
    twistd.run_tool,
    twistd.manage,
    twistd.create_users_with_tokens,
    nginx.Nginx,
    subprocess,
)
LAUNCHER_MODULES = {twistd.__name__, nginx.__name__}


def _is_launcher_class(value):
    return isinstance(value, type) and issubclass(value, (twistd.Daemon, nginx.Nginx))


def _names(code):
    """The global names a code object and the functions nested in it use."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _functions(obj):
    """The plain functions behind a function, a fixture or a class (its methods)."""
    if isinstance(obj, type):
        return [f for f in vars(obj).values() if inspect.isfunction(f)]
    obj = inspect.unwrap(getattr(obj, "__func__", obj))
    return [obj] if inspect.isfunction(obj) else []


def launches(obj, seen=None):
    """True when ``obj`` uses a launcher, itself or through the tests' own code it calls."""
    seen = set() if seen is None else seen
    for function in _functions(obj):
        if function in seen:
            continue
        seen.add(function)
        names = _names(function.__code__)
        if names & LAUNCHER_MODULES:  # imported in the function itself
            return True
        for name in names:
            value = function.__globals__.get(name)
            if any(value is launcher for launcher in LAUNCHERS) or _is_launcher_class(value):
                return True
            module = getattr(value, "__module__", None) or ""
            ours = module.startswith("tests.") and not module.startswith("tests.support.")
            if ours and launches(value, seen):
                return True
    return False


def is_end_to_end(item):
    """The test, or one of the fixtures it takes, uses a launcher."""
    fixtures = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    funcs = [getattr(item, "function", None)]
    funcs += [d.func for defs in fixtures.values() for d in defs]
    return any(f is not None and launches(f) for f in funcs)
