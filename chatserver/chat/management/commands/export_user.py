"""``chatserver export-user USERNAME [--output FILE]``: a data-subject export as JSON Lines."""

from django.core.management.base import BaseCommand, CommandError

from ...operations import export
from ._output import add_output_arguments, output_stream


class Command(BaseCommand):
    help = (
        "Write what the server holds about a user (account, settings, sessions, rooms, every "
        "message they may see or wrote, reactions) as JSON Lines, streaming."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        add_output_arguments(parser)

    def handle(self, *args, **options):
        user = export.find_user(options["username"])
        if user is None:
            raise CommandError(f"No user {options['username']!r}.")
        with output_stream(self, options) as stream:
            count = export.export_user(user, stream, options["chunk_size"])
        self.stderr.write(f"exported user {user.username}: {count} lines")
