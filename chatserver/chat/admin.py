"""Django admin for rooms (with guardian's object-permission pages), messages and sessions."""

from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from .models import Membership, Message, Reaction, Room, RoomEvent, Session


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ("user", "channel_name", "connected_at", "last_heartbeat", "closed_at")
    list_filter = ("closed_at",)
    search_fields = ("user__username", "channel_name")


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)
    readonly_fields = ("joined_at", "last_read_seq", "last_delivered_seq")


@admin.register(Room)
class RoomAdmin(GuardedModelAdmin):
    list_display = ("id", "kind", "name", "is_public", "locked", "member_limit", "last_seq")
    list_filter = ("kind", "is_public", "locked")
    search_fields = ("name",)
    # Membership and seq change only through the protocol, which keeps permissions and the
    # event log in step; the admin shows them.
    readonly_fields = ("direct_key", "last_seq", "last_event_at", "created_at")
    inlines = [MembershipInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "room", "seq", "author", "kind", "is_edited", "is_deleted", "created_at")
    list_filter = ("kind", "is_deleted", "is_edited")
    search_fields = ("content", "author__username")
    raw_id_fields = ("room", "author", "parent", "forwarded_from")
    readonly_fields = ("seq", "client_msg_id", "created_at", "edited_at")


@admin.register(Reaction)
class ReactionAdmin(admin.ModelAdmin):
    list_display = ("message", "user", "emoji", "created_at")
    raw_id_fields = ("message", "user")


@admin.register(RoomEvent)
class RoomEventAdmin(admin.ModelAdmin):
    list_display = ("room", "seq", "event_type", "message_id", "created_at")
    list_filter = ("event_type",)
    raw_id_fields = ("room",)

    def has_change_permission(self, request, obj=None):
        return False  # the log is append-only
