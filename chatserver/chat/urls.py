from django.urls import path

from .auth import views

urlpatterns = [
    path("api/token/", views.obtain_token, name="token_obtain"),
    path("api/token/refresh/", views.refresh_token, name="token_refresh"),
    path("api/token/revoke/", views.revoke_token, name="token_revoke"),
]
