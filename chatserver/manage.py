"""The ``chatserver`` command: Django's management commands with the daemon's settings.

Honours ``--settings`` like django-admin, ``DJANGO_SETTINGS_MODULE``, and the state directory
like the daemon: ``--state-dir DIR`` (before or after the subcommand) or ``CHATSERVER_STATE_DIR``.
"""

import os
import sys
from pathlib import Path

DEFAULT_SETTINGS = "chatserver.settings.development"


def take_state_dir(argv):
    """Remove ``--state-dir DIR`` / ``--state-dir=DIR`` from argv; return (argv, dir or None)."""
    rest, state_dir = [], None
    args = iter(argv)
    for arg in args:
        if arg == "--state-dir":
            state_dir = next(args, None)
            if state_dir is None:
                sys.exit("chatserver: --state-dir needs a directory")
        elif arg.startswith("--state-dir="):
            state_dir = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return rest, state_dir


# Commands spelled as the docs spell them; Django names commands after their modules.
ALIASES = {"export-room": "export_room", "export-user": "export_user"}


def main(argv=None):
    argv, state_dir = take_state_dir(list(argv if argv is not None else sys.argv))
    if len(argv) > 1 and argv[1] in ALIASES:
        argv[1] = ALIASES[argv[1]]
    if state_dir:
        os.environ["CHATSERVER_STATE_DIR"] = str(Path(state_dir).resolve())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", DEFAULT_SETTINGS)
    from django.core.management import execute_from_command_line

    from chatserver.settings.environment import state_dir

    state_dir().mkdir(parents=True, exist_ok=True)  # SQLite creates the file, not the folder
    execute_from_command_line(argv)


if __name__ == "__main__":
    main()
