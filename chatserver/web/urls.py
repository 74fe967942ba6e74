from django.urls import path

from . import signup, views

urlpatterns = [
    path("", views.index, name="web_index"),
    path("api/signup/", signup.signup, name="signup"),
]
