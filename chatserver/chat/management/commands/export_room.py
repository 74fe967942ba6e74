"""``chatserver export-room ROOM_ID [--output FILE]``: a room's history as JSON Lines."""

from django.core.management.base import BaseCommand, CommandError

from ...operations import export
from ._output import add_output_arguments, output_stream


class Command(BaseCommand):
    help = (
        "Write a room's history (room, members, messages with reactions, deleted ones as "
        "tombstones, the event log with edits) as JSON Lines, streaming."
    )

    def add_arguments(self, parser):
        parser.add_argument("room_id", type=int)
        add_output_arguments(parser)

    def handle(self, *args, **options):
        room = export.find_room(options["room_id"])
        if room is None:
            raise CommandError(f"No room {options['room_id']}.")
        with output_stream(self, options) as stream:
            count = export.export_room(room, stream, options["chunk_size"])
        self.stderr.write(f"exported room {room.pk}: {count} lines")
