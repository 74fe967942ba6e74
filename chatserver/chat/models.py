"""Database models of the chat application.

The database is the source of truth for who is connected where: a ``Session`` row per open
WebSocket, never a volatile cache entry, so state survives a restart of Redis or of the daemon.
"""

from django.conf import settings
from django.db import models


class Session(models.Model):
    """One WebSocket connection of one user, identified by its channel name."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions"
    )
    channel_name = models.CharField(max_length=255, unique=True)
    connected_at = models.DateTimeField(auto_now_add=True)
    last_heartbeat = models.DateTimeField(db_index=True)
    # Set when the socket closed (cleanly or by the heartbeat sweeper); open sessions have None.
    closed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    close_code = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "closed_at"], name="chat_session_user_open")]

    def __str__(self):
        state = "open" if self.closed_at is None else f"closed {self.close_code}"
        return f"{self.user_id}@{self.channel_name} ({state})"
