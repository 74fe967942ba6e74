from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chatserver.chat"
    label = "chat"
    verbose_name = "Chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.conf import settings
        from django.contrib.auth.signals import user_logged_in, user_login_failed
        from django.db.models.signals import post_delete, post_save, pre_save

        from .auth import revocation
        from .limits import login_throttle
        from .storage import array_in

        array_in.register()

        user_login_failed.connect(login_throttle.on_login_failed, dispatch_uid="chat-throttle")
        user_logged_in.connect(login_throttle.on_logged_in, dispatch_uid="chat-throttle")
        user = settings.AUTH_USER_MODEL
        uid = "chat-revocation"
        pre_save.connect(revocation.note_credential_change, sender=user, dispatch_uid=uid)
        post_save.connect(revocation.cut_off_after_change, sender=user, dispatch_uid=uid)
        post_delete.connect(revocation.cut_off_deleted, sender=user, dispatch_uid=uid)
