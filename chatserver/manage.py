"""The ``chatserver`` command: Django's management commands with the daemon's settings.

Honours ``--settings`` like django-admin, ``DJANGO_SETTINGS_MODULE`` and ``CHATSERVER_STATE_DIR``.
"""

import os
import sys

DEFAULT_SETTINGS = "chatserver.settings.development"


def main(argv=None):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", DEFAULT_SETTINGS)
    from django.core.management import execute_from_command_line

    execute_from_command_line(list(argv if argv is not None else sys.argv))


if __name__ == "__main__":
    main()
