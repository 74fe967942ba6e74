"""Helpers placed in the manhole's namespace, so operators need not know the internals.

Each helper returns a Deferred (the manhole prints it when it fires); database work runs in the
chat application's async functions, never on the reactor thread.
"""

from django.contrib.auth import get_user_model

from .aio import as_deferred


class OperatorTools:
    def __init__(self, daphne_service, sweeper, reaper):
        self.daphne = daphne_service
        self.sweeper = sweeper
        self.reaper = reaper

    async def _stats(self):
        from chatserver.chat import sessions
        from chatserver.chat.operations.operator_actions import chat_counts

        counts = await sessions.session_counts()
        counts["websockets_here"] = self.daphne.connection_count()
        counts["sweeper_runs"] = self.sweeper.runs
        counts["reaper_runs"] = self.reaper.runs
        counts.update(await chat_counts())
        return counts

    def stats(self):
        """Connections in this process, open sessions and users online, rooms."""
        return as_deferred(self._stats())

    def sessions(self, user):
        """Open sessions of a user (id or username)."""
        from chatserver.chat import sessions

        async def run():
            return await sessions.open_sessions_of(await _user_id(user))

        return as_deferred(run())

    def disconnect(self, user):
        """Close every socket of a user with close code 4400; returns how many."""
        from chatserver.chat import sessions

        async def run():
            return await sessions.disconnect_user(await _user_id(user))

        return as_deferred(run())

    def broadcast(self, room_id, text):
        """Post a system message into a room: stored, sequenced and delivered like any other."""
        from chatserver.chat.operations.operator_actions import system_message

        return as_deferred(system_message(room_id, text))

    def sweep(self):
        """Run the heartbeat sweeper now; returns how many sessions it expired."""
        return self.sweeper.run_now()

    def reap(self):
        """Run the stale-session reaper now; returns how many rows it deleted."""
        return self.reaper.run_now()

    def namespace(self):
        names = ("stats", "sessions", "disconnect", "broadcast", "sweep", "reap")
        namespace = {name: getattr(self, name) for name in names}
        namespace["tools"] = self
        namespace["help_chat"] = lambda: {n: getattr(self, n).__doc__ for n in names}
        return namespace


async def _user_id(user):
    from channels.db import database_sync_to_async

    if isinstance(user, int):
        return user

    @database_sync_to_async
    def lookup():
        return get_user_model().objects.only("pk").get(username=user).pk

    return await lookup()
