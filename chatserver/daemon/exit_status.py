"""End the daemon with a chosen exit status once twistd has shut down cleanly.

twistd exits 0 whenever its reactor stops and has no way to report failure, so a daemon that
could not start would look like a clean stop to systemd (``Restart=on-failure``) and to scripts.
``stop_with_status`` stops the reactor the ordinary way (services stop, sockets already bound are
released, twistd removes its pid file and flushes its log), then ends the process with the status
from an ``atexit`` hook: nothing else runs after twistd's main function returns.
"""

import atexit
import logging
import os
import sys

from twisted.internet.error import ReactorNotRunning

_status = None


def stop_with_status(reactor, status=1):
    """Stop the reactor (now, or as soon as it runs) and exit with ``status`` afterwards."""
    global _status
    if _status is None:
        atexit.register(_exit)
        _status = status
    if reactor.running:
        _stop(reactor)
    else:
        reactor.callWhenRunning(_stop, reactor)


def _stop(reactor):
    try:
        reactor.stop()
    except ReactorNotRunning:  # already stopping
        pass


def _exit():
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except Exception:  # noqa: S110 - a closed stream has nothing left to flush
            pass
    os._exit(_status)
