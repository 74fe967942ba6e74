from django.contrib import admin

from .models import Session


@admin.register(Session)
class SessionAdmin(admin.ModelAdmin):
    list_display = ("user", "channel_name", "connected_at", "last_heartbeat", "closed_at")
    list_filter = ("closed_at",)
    search_fields = ("user__username", "channel_name")
