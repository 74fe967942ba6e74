"""Payload builders: the only place model rows become JSON-ready dicts.

Users appear as id, username and display name only (never e-mail or other private fields), and a
deleted message never carries its content.
"""


def user_payload(user):
    if user is None:
        return None
    return {
        "id": user.pk,
        "username": user.username,
        "display_name": user.get_full_name() or user.username,
    }


def reactions_payload(reactions):
    """``[{"emoji": str, "user_ids": [int]}]`` in first-reaction order."""
    grouped = {}
    for reaction in reactions:
        grouped.setdefault(reaction.emoji, []).append(reaction.user_id)
    return [{"emoji": emoji, "user_ids": users} for emoji, users in grouped.items()]


def message_payload(message, reactions=None):
    """A message as clients see it; expects ``author`` selected and ``reactions`` prefetched.

    Pass ``reactions`` for a message just created, to skip the query for its (empty) set.
    """
    if reactions is None:
        reactions = message.reactions.all()
    deleted = message.is_deleted
    return {
        "id": message.pk,
        "room_id": message.room_id,
        "seq": message.seq,
        "kind": message.kind,
        "author": user_payload(message.author),
        "content": None if deleted else message.content,
        "client_msg_id": message.client_msg_id,
        "parent_message_id": message.parent_id,
        "forwarded_from_id": message.forwarded_from_id,
        "is_edited": message.is_edited,
        "is_deleted": deleted,
        "created_at": message.created_at.isoformat(),
        "edited_at": message.edited_at.isoformat() if message.edited_at else None,
        "reactions": [] if deleted else reactions_payload(reactions),
    }


def deleted_message_payload(message_id, room_id):
    """What is left of a hard-deleted message: its id and the fact it is gone."""
    return {"id": message_id, "room_id": room_id, "is_deleted": True, "content": None}


def room_payload(room):
    return {
        "id": room.pk,
        "type": room.kind,
        "name": room.name,
        "description": room.description,
        "is_public": room.is_public,
        "locked": room.locked,
        "member_limit": room.member_limit,
        "last_seq": room.last_seq,
        "created_at": room.created_at.isoformat(),
    }


def member_payload(membership):
    """A member of a room; expects ``user`` selected."""
    return {
        **user_payload(membership.user),
        "role": membership.role,
        "joined_at": membership.joined_at.isoformat(),
        "last_read_seq": membership.last_read_seq,
    }
