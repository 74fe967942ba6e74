"""Bridge asyncio coroutines into Twisted Deferreds on the asyncio reactor."""

import asyncio
import inspect

from twisted.internet import defer


def as_deferred(result):
    """Wrap a coroutine, awaitable, Deferred or plain value as a Deferred.

    Coroutines run as asyncio tasks on the reactor's event loop (the ORM helpers they await are
    asyncio code, which Twisted's own coroutine runner cannot drive).
    """
    if isinstance(result, defer.Deferred):
        return result
    if inspect.isawaitable(result):
        return defer.Deferred.fromFuture(asyncio.ensure_future(result))
    return defer.succeed(result)
