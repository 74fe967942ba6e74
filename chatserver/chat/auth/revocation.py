"""Cutting a user off: sockets closed with 4001 on every daemon when credentials change.

A password change, a deactivation or a deleted user closes every socket of that user; a logout
or a reused refresh token closes the sockets opened with that token family's access tokens. The
close travels as a ``session.close`` group message to the user's group, which every daemon's
local groups hear and hand to the sockets of that user they hold (localgroups.py), so it needs
no session rows.
Tokens themselves are refused where they are read (tokens.py); this only ends what is open.
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from ..delivery.fanout import user_group
from ..delivery.localgroups import send_to_every_process
from ..protocol import CLOSE_UNAUTHENTICATED
from ..sessions import SESSION_CLOSE

logger = logging.getLogger(__name__)

WATCHED_FIELDS = {"password", "is_active"}


def _close(user_id, family_id=None):
    layer = get_channel_layer()
    if layer is None:
        return
    group = user_group(user_id)
    message = {"type": SESSION_CLOSE, "group": group, "code": CLOSE_UNAUTHENTICATED}
    if family_id is not None:
        message["family"] = str(family_id)
    try:
        async_to_sync(send_to_every_process)(layer, message)
    except Exception:  # the tokens are refused all the same; the sockets close at expiry
        logger.exception("could not tell user %s's sockets to close", user_id)


def close_family_sockets(user_id, family_id):
    """Close the sockets opened with the access tokens of one token family."""
    _close(user_id, family_id)


def close_user_sockets(user_id):
    """Close every socket of a user (tokens and session cookies alike)."""
    _close(user_id)


# -- signal receivers (connected in apps.py) --------------------------------------------------


def note_credential_change(sender, instance, update_fields=None, raw=False, **kwargs):
    """``pre_save``: remember whether this save changes the password or deactivates."""
    instance._chat_cut_off = False
    if raw or instance.pk is None:
        return
    if update_fields is not None and not WATCHED_FIELDS & set(update_fields):
        return  # e.g. last_login on every login: no query
    before = sender._default_manager.filter(pk=instance.pk).values(*WATCHED_FIELDS).first()
    if before is None:
        return
    instance._chat_cut_off = before["password"] != instance.password or (
        before["is_active"] and not instance.is_active
    )


def cut_off_after_change(sender, instance, created=False, raw=False, **kwargs):
    """``post_save``: once committed, revoke the user's token families and close the sockets."""
    if raw or created or not getattr(instance, "_chat_cut_off", False):
        return
    instance._chat_cut_off = False
    user_id = instance.pk
    from ..models import TokenFamily

    TokenFamily.objects.filter(user_id=user_id, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    transaction.on_commit(lambda: close_user_sockets(user_id))


def cut_off_deleted(sender, instance, **kwargs):
    user_id = instance.pk
    transaction.on_commit(lambda: close_user_sockets(user_id))
