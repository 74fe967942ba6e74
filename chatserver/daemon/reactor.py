"""Make sure the process runs Twisted's asyncio reactor, which Daphne and Channels need.

twistd installs a ``-r`` reactor while parsing its own options, before it imports our tap
module; so at import we install the asyncio reactor when none is installed yet, accept an
already-installed asyncio reactor, and remember any other so the options can refuse it.
"""

import sys

from twisted.internet import asyncioreactor


def install_asyncio_reactor():
    """Install the asyncio reactor if no reactor is installed; return the reactor in use."""
    if "twisted.internet.reactor" not in sys.modules:
        asyncioreactor.install()
    from twisted.internet import reactor

    return reactor


def incompatible_reactor_error(reactor):
    """A one-line explanation when ``reactor`` cannot run Daphne, else None."""
    if isinstance(reactor, asyncioreactor.AsyncioSelectorReactor):
        return None
    name = type(reactor).__name__
    return (
        f"chat needs Twisted's asyncio reactor, but {name} is installed: "
        "drop -r or use 'twistd -r asyncio chat ...'."
    )
