"""Django admin for rooms (with guardian's object-permission pages), messages and sessions.

Moderation in the admin goes through the same services as the protocol (services/moderation.py,
services/rooms.py): a message edited or deleted, a member added or removed, a room edited or
deleted becomes a room event with a ``seq``, and once the transaction commits its frame is
broadcast through the channel layer to every daemon (sync_broadcast.py). Ending sessions closes
the sockets on whichever daemon holds them.
"""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db import transaction
from guardian.admin import GuardedModelAdmin

from .delivery import fanout, sync_broadcast
from .models import Membership, Message, Mute, Reaction, Room, RoomEvent, Session
from .protocol import (
    CLOSE_SERVER_REQUEST,
    MEMBERS_ADDED,
    MEMBERS_REMOVED,
    MESSAGE_MODIFIED,
    ROOM_DELETED,
    ROOM_EXIT,
    ROOM_UPDATED,
    ProtocolError,
    encode_event,
)
from .serializers import user_payload
from .services import moderation
from .services import rooms as room_service


def _after_commit(broadcast):
    transaction.on_commit(broadcast)


def _refused(model_admin, request, error):
    model_admin.message_user(request, f"Refused: {error.detail}", messages.ERROR)


def _end_sessions(channel_names):
    for channel_name in channel_names:
        sync_broadcast.close_channel(channel_name, CLOSE_SERVER_REQUEST)


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ("user", "channel_name", "connected_at", "last_heartbeat", "closed_at")
    list_filter = ("closed_at",)
    search_fields = ("user__username", "channel_name")
    actions = ["end_sessions"]

    @admin.action(description="End the selected sessions (close their sockets with 4400)")
    def end_sessions(self, request, queryset):
        channels = list(queryset.filter(closed_at__isnull=True).values_list("channel_name", flat=1))
        _after_commit(lambda: _end_sessions(channels))
        self.message_user(request, f"{len(channels)} open session(s) told to close.")


class MembershipInline(admin.TabularInline):
    """Members are added and removed through the room services (events, permissions, seq); a
    role changes through the protocol's room.modify."""

    model = Membership
    extra = 0
    raw_id_fields = ("user",)
    readonly_fields = ("role", "joined_at", "last_read_seq", "last_delivered_seq")


@admin.register(Room)
class RoomAdmin(GuardedModelAdmin):
    list_display = ("id", "kind", "name", "is_public", "locked", "member_limit", "last_seq")
    list_filter = ("kind", "is_public", "locked")
    search_fields = ("name",)
    # Membership and seq change only through the services, which keep permissions and the event
    # log in step; rooms are created through the protocol (room.create).
    readonly_fields = (
        "kind",
        "direct_key",
        "last_seq",
        "last_event_at",
        "created_at",
        "created_by",
    )
    inlines = [MembershipInline]

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        changes = {k: v for k, v in changes.items() if k in room_service.UPDATABLE}
        if not changes:
            return
        try:
            outcome = room_service.modify_room(
                request.user,
                moderation.staff_access(obj),
                obj.pk,
                {"action": "update", **changes},
            )
        except ProtocolError as error:
            _refused(self, request, error)
            return
        text = encode_event(ROOM_UPDATED, outcome.data)

        def tell():
            sync_broadcast.membership_changed(outcome.changed, obj.pk, fanout.CHANGED)
            sync_broadcast.to_room(obj.pk, text, invalidate=outcome.perms_changed)

        _after_commit(tell)

    def save_formset(self, request, form, formset, change):
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        room = form.instance
        formset.save(commit=False)  # fills deleted_objects and new_objects; nothing written
        removed = [m.user_id for m in formset.deleted_objects]
        added = [m.user_id for m in formset.new_objects]
        try:
            if removed:
                _remove_members(request.user, room, removed)
            if added:
                _add_members(request.user, room, added)
        except ProtocolError as error:
            _refused(self, request, error)

    def delete_model(self, request, obj):
        _delete_room(request.user, obj)

    def delete_queryset(self, request, queryset):
        for room in queryset:
            _delete_room(request.user, room)


def _remove_members(actor, room, user_ids):
    outcome = moderation.remove_members(actor, room, user_ids)
    exit_text = encode_event(
        ROOM_EXIT,
        {"room_id": room.pk, "seq": outcome.data["seq"], "removed_by": user_payload(actor)},
    )
    text = encode_event(MEMBERS_REMOVED, outcome.data)

    def tell():
        sync_broadcast.membership_changed(outcome.left, room.pk, fanout.LEFT, exit_text)
        sync_broadcast.to_room(room.pk, text)

    _after_commit(tell)


def _add_members(actor, room, user_ids):
    outcome = room_service.add_members(actor, room.pk, user_ids)
    text = encode_event(MEMBERS_ADDED, outcome.data)

    def tell():
        sync_broadcast.to_room(room.pk, text)
        sync_broadcast.membership_changed(outcome.joined, room.pk, fanout.JOINED, text)

    _after_commit(tell)


def _delete_room(actor, room):
    room_id = room.pk
    outcome = room_service.modify_room(
        actor, moderation.staff_access(room), room_id, {"action": "delete"}
    )
    text = encode_event(ROOM_DELETED, outcome.data)

    def tell():
        sync_broadcast.membership_changed(outcome.left, room_id, fanout.LEFT, text)

    _after_commit(tell)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Only a message's content can be edited here, and deleting leaves a tombstone (with
    MESSAGE_SOFT_DELETE): both are room events the room hears about."""

    list_display = ("id", "room", "seq", "author", "kind", "is_edited", "is_deleted", "created_at")
    list_filter = ("kind", "is_deleted", "is_edited")
    search_fields = ("content", "author__username")
    fields = ("room", "seq", "author", "kind", "content", "is_edited", "is_deleted")
    readonly_fields = ("room", "seq", "author", "kind", "is_edited", "is_deleted")
    actions = ["delete_messages"]

    def has_add_permission(self, request):
        return False  # messages are sent through the protocol

    def save_model(self, request, obj, form, change):
        if "content" not in form.changed_data:
            return
        try:
            data = moderation.edit_message(obj.pk, form.cleaned_data["content"])
        except ProtocolError as error:
            _refused(self, request, error)
            return
        _broadcast_message_event(data)

    def delete_model(self, request, obj):
        _delete_messages([obj.pk])

    def delete_queryset(self, request, queryset):
        _delete_messages(list(queryset.values_list("pk", flat=True)))

    @admin.action(description="Delete the selected messages (tombstones, told to the room)")
    def delete_messages(self, request, queryset):
        count = _delete_messages(list(queryset.filter(is_deleted=False).values_list("pk", flat=1)))
        self.message_user(request, f"{count} message(s) deleted.")


def _delete_messages(message_ids):
    deleted = 0
    for message_id in message_ids:
        try:
            data = moderation.delete_message(message_id)
        except ProtocolError:  # deleted already
            continue
        _broadcast_message_event(data)
        deleted += 1
    return deleted


def _broadcast_message_event(data):
    text = encode_event(MESSAGE_MODIFIED, data)
    _after_commit(lambda: sync_broadcast.to_room(data["room_id"], text))


@admin.register(Reaction)
class ReactionAdmin(admin.ModelAdmin):
    list_display = ("message", "user", "emoji", "created_at")
    raw_id_fields = ("message", "user")


@admin.register(Mute)
class MuteAdmin(admin.ModelAdmin):
    """Mutes are set through room.mute (a room event); the admin lists them."""

    list_display = ("room", "user", "until", "muted_by", "created_at")
    raw_id_fields = ("room", "user", "muted_by")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RoomEvent)
class RoomEventAdmin(admin.ModelAdmin):
    list_display = ("room", "seq", "event_type", "message_id", "created_at")
    list_filter = ("event_type",)
    raw_id_fields = ("room",)

    def has_change_permission(self, request, obj=None):
        return False  # the log is append-only


User = get_user_model()


class ChatUserAdmin(UserAdmin):
    """Django's user admin with one more action: end every session of the selected users."""

    actions = ["end_all_sessions"]

    @admin.action(description="End all sessions of the selected users (sockets close with 4400)")
    def end_all_sessions(self, request, queryset):
        user_ids = list(queryset.values_list("pk", flat=True))

        def tell():
            for user_id in user_ids:
                sync_broadcast.close_user_sockets(user_id, CLOSE_SERVER_REQUEST)

        _after_commit(tell)
        self.message_user(request, f"Sessions of {len(user_ids)} user(s) told to close.")


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, ChatUserAdmin)
