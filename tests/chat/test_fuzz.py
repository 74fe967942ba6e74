"""Malformed and hostile frames never kill the consumer: each gets one error frame at most."""

import json

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from chatserver.chat.models import Session
from chatserver.chat.protocol import CLIENT_EVENTS, ERROR_INTERNAL

from .conftest import open_client

pytestmark = pytest.mark.django_db(transaction=True)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    sorted({name for event in CLIENT_EVENTS.values() for name in event.fields})
)
frames = st.one_of(
    st.text(min_size=1, max_size=200),  # anything (Daphne drops empty frames)
    st.builds(json.dumps, json_values),  # valid JSON of any shape
    st.builds(  # well-formed envelopes with hostile data
        lambda event, data, rid: json.dumps({"event_type": event, "data": data, "request_id": rid}),
        st.sampled_from(sorted(CLIENT_EVENTS)) | st.text(max_size=10),
        st.dictionaries(field_names, json_values, max_size=5),
        st.none() | st.text(max_size=10),
    ),
)

HIGH = {"rate": 1e6, "burst": 1e6}
PROBE = "fuzz-heartbeat-probe"  # longer than any generated request_id: cannot be mistaken
PATIENCE = 15  # seconds for an answer: a loaded machine is slow, never wrong


def fuzz_user():
    """The user, without the previous examples' sessions: Hypothesis seeds ``random`` alike for
    every example, so the in-memory layer names each example's channel alike."""
    user = get_user_model().objects.get_or_create(username="fuzz")[0]
    Session.objects.filter(user=user).delete()
    return user


def no_rate_limits():
    options = dict(django_settings.REALTIME_CHAT_MESSAGING)
    options["RATE_LIMITS"] = dict.fromkeys(
        ("send", "typing", "read", "manage", "connect", "connect_address"), HIGH
    )
    return override_settings(REALTIME_CHAT_MESSAGING=options)


async def replies_until_heartbeat(client):
    """Every frame the socket sends before the answer to our heartbeat probe."""
    await client.send("session.heartbeat", request_id=PROBE)
    replies = []
    while True:
        reply = await client.recv(PATIENCE)
        if reply.get("request_id") == PROBE and reply["eventType"] == "session.heartbeat":
            return replies
        replies.append(reply)


@settings(max_examples=75, deadline=None)
@given(batch=st.lists(frames, min_size=1, max_size=5))
async def test_malformed_frames_never_kill_the_consumer(batch):
    # A socket of each example's own, opened in the example (no fixture outlives an input).
    user = await sync_to_async(fuzz_user)()
    with no_rate_limits():
        client = await open_client(user, timeout=PATIENCE)
        try:
            for frame in batch:
                await client.communicator.send_to(text_data=frame)
                # The heartbeat's answer proves the socket lives; what came before it is the
                # frame's doing: at most one error, and never the internal-error code.
                errors = [
                    r for r in await replies_until_heartbeat(client) if r["eventType"] == "error"
                ]
                assert len(errors) <= 1, (frame, errors)
                assert all(e["error"]["code"] != ERROR_INTERNAL for e in errors), (frame, errors)
        finally:
            await client.close()
