"""HTTP routes: the admin and the chat application's token endpoints."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("chatserver.chat.urls")),
    path("", include("chatserver.web.urls")),
]
