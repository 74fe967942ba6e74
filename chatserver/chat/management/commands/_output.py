"""Where the export commands write: stdout, or a file named by ``--output``."""

import contextlib

from ...operations import export


def add_output_arguments(parser):
    parser.add_argument("--output", "-o", help="write to this file instead of stdout")
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=export.CHUNK_SIZE,
        help=f"rows read per round trip (default {export.CHUNK_SIZE})",
    )


@contextlib.contextmanager
def output_stream(command, options):
    if options["output"]:
        with open(options["output"], "w", encoding="utf-8") as stream:
            yield stream
    else:
        yield command.stdout
        command.stdout.flush()
