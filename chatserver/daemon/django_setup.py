"""Configure Django for the daemon: settings module, state directory, migrations."""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from twisted.python import usage


def configure_django(settings_module, state_dir=None):
    """Point Django at its settings and set it up; configuration errors become usage errors."""
    if state_dir:
        os.environ["CHATSERVER_STATE_DIR"] = str(Path(state_dir).resolve())
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django
    from django.conf import settings

    try:
        django.setup()
    except ImproperlyConfigured as error:
        raise usage.UsageError(str(error)) from None
    except ImportError as error:
        raise usage.UsageError(f"cannot import settings {settings_module!r}: {error}") from None
    settings.STATE_DIR.mkdir(parents=True, exist_ok=True)
    return settings


def migrate():
    """Apply pending migrations (before the reactor runs, so blocking is fine here)."""
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
