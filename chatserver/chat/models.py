"""Database models of the chat application.

The database is the source of truth: who is connected (``Session``), who belongs to which room
(``Membership``, mirrored into guardian object permissions) and every room event in order
(``RoomEvent``, one gap-free ``seq`` per room). The channel layer only relays what is written here.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


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


class Room(models.Model):
    """A conversation: a one-to-one chat, a group chat or a broadcast channel."""

    DIRECT = "direct"
    GROUP = "group"
    CHANNEL = "channel"
    KINDS = [(DIRECT, "One-to-one"), (GROUP, "Group chat"), (CHANNEL, "Broadcast channel")]

    kind = models.CharField(max_length=16, choices=KINDS)
    name = models.CharField(max_length=100, blank=True)
    description = models.CharField(max_length=500, blank=True)
    # Public groups and channels can be joined by anyone with ``room.join``.
    is_public = models.BooleanField(default=False)
    # Locked groups: only admins send (members lose the send_message permission).
    locked = models.BooleanField(default=False)
    member_limit = models.PositiveIntegerField(default=100)
    # "<low user id>:<high user id>" for one-to-one rooms; the unique index makes creating the
    # same pair twice race-free (the loser of the race reads the winner's room).
    direct_key = models.CharField(max_length=64, unique=True, null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The seq of the newest RoomEvent; incremented in the transaction that writes the event.
    last_seq = models.PositiveBigIntegerField(default=0)
    # Not indexed: every stored message bumps last_seq and last_event_at, and an update that
    # touches no indexed column can stay on the row's page (a HOT update, see migration 0003).
    last_event_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # view_room is Django's default permission; the others are granted per room by role.
        permissions = [
            ("send_message", "Can send messages to the room"),
            ("manage_members", "Can add and remove room members"),
            ("modify_room", "Can change the room's settings"),
            ("delete_any_message", "Can delete any message in the room"),
        ]

    def __str__(self):
        return f"{self.kind} {self.pk} {self.name}".strip()


class Membership(models.Model):
    """A user's place in a room: role, when they joined and how far they have read."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    ROLES = [(OWNER, "Owner"), (ADMIN, "Admin / moderator"), (MEMBER, "Member / subscriber")]

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_memberships"
    )
    role = models.CharField(max_length=16, choices=ROLES, default=MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)
    last_read_seq = models.PositiveBigIntegerField(default=0)
    last_delivered_seq = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "user"], name="chat_membership_unique")
        ]
        indexes = [models.Index(fields=["user", "room"], name="chat_membership_user")]

    def __str__(self):
        return f"{self.user_id} in {self.room_id} ({self.role})"


class Message(models.Model):
    TEXT = "text"
    SYSTEM = "system"
    KINDS = [(TEXT, "Text"), (SYSTEM, "System")]

    # Not indexed alone: the (room, seq) constraint's index leads with the room (migration 0008).
    room = models.ForeignKey(
        Room, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    # The seq of the message.dispatch event that created it.
    seq = models.PositiveBigIntegerField()
    # None for system messages (and for authors whose account was deleted).
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="chat_messages",
    )
    kind = models.CharField(max_length=16, choices=KINDS, default=TEXT)
    content = models.TextField(blank=True)
    # Chosen by the client so that a resend returns the original message instead of a copy.
    # NULL, not "", when absent: the unique constraint applies only to given ids.
    client_msg_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    # Indexed where set (Meta.indexes): most messages are neither replies nor forwards.
    parent = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    forwarded_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    is_edited = models.BooleanField(default=False)
    is_deleted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="chat_message_room_seq"),
            models.UniqueConstraint(
                fields=["author", "client_msg_id"],
                condition=Q(client_msg_id__isnull=False),
                name="chat_message_client_msg_id",
            ),
        ]
        indexes = [
            models.Index(
                fields=["parent"], condition=Q(parent__isnull=False), name="chat_message_parent"
            ),
            models.Index(
                fields=["forwarded_from"],
                condition=Q(forwarded_from__isnull=False),
                name="chat_message_forwarded_from",
            ),
        ]

    def __str__(self):
        return f"{self.room_id}#{self.seq} by {self.author_id}"


class Reaction(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    emoji = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # First-reaction order in payloads (serializers.reactions_payload), whatever the plan.
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["message", "user", "emoji"], name="chat_reaction_unique"
            )
        ]

    def __str__(self):
        return f"{self.user_id} {self.emoji} on {self.message_id}"


class RoomEvent(models.Model):
    """The per-room event log ``session.resume`` replays from.

    Message events keep only the message id: the payload is rebuilt from the message's current
    state at replay, so edited or deleted content never comes back from the log.
    """

    # Not indexed alone: the (room, seq) constraint's index leads with the room (migration 0008).
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="events", db_index=False)
    seq = models.PositiveBigIntegerField()
    event_type = models.CharField(max_length=64)
    # A plain id, not a foreign key: the event outlives a hard-deleted message. Not indexed:
    # the log is read by room and seq, and its message ids lead to messages, never back.
    message_id = models.BigIntegerField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "seq"], name="chat_event_room_seq")]

    def __str__(self):
        return f"{self.room_id}#{self.seq} {self.event_type}"


class TokenFamily(models.Model):
    """The refresh tokens of one login, each replacing the one before (rotation).

    Only the newest refresh token (``current_jti``) may be used; presenting an older one means
    it was copied, so the whole family is revoked and its access tokens stop connecting. A
    logout (``POST /api/token/revoke/``) revokes it too.
    """

    id = models.UUIDField(primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="token_families"
    )
    current_jti = models.CharField(max_length=32)
    created_at = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "token families"

    def __str__(self):
        state = "active" if self.revoked_at is None else "revoked"
        return f"{self.user_id} {self.pk} ({state})"


class Block(models.Model):
    """``blocker`` blocked ``blocked``: who is blocked cannot add the blocker to rooms or open a
    one-to-one room with them."""

    blocker = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_blocks"
    )
    blocked = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_blocked_by"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["blocker", "blocked"], name="chat_block_unique")
        ]
        indexes = [models.Index(fields=["blocked", "blocker"], name="chat_block_by_blocked")]

    def __str__(self):
        return f"{self.blocker_id} blocks {self.blocked_id}"


class Mute(models.Model):
    """``user`` may not post in ``room`` until ``until`` (room.mute). Kept apart from the
    membership so that leaving and joining a public room again does not lift it."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="mutes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    until = models.DateTimeField()
    muted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="chat_mute_unique")]

    def __str__(self):
        return f"{self.user_id} muted in {self.room_id} until {self.until:%Y-%m-%d %H:%M}"


class PresenceSetting(models.Model):
    """A user's presence as others see it: hidden or not, and when their last socket closed."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    hidden = models.BooleanField(default=False)
    last_seen = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.user_id} ({'hidden' if self.hidden else 'visible'})"
