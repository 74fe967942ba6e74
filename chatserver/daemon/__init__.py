"""The Twisted side of chatserver: options, services, maintenance jobs, manhole, log bridge.

Nothing here touches the ORM directly; database work goes through the chat application's async
functions, awaited from Twisted with :func:`chatserver.daemon.aio.as_deferred`.
"""
