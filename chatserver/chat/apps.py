from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chatserver.chat"
    label = "chat"
    verbose_name = "Chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from . import login_throttle

        user_login_failed.connect(login_throttle.on_login_failed, dispatch_uid="chat-throttle")
        user_logged_in.connect(login_throttle.on_logged_in, dispatch_uid="chat-throttle")
