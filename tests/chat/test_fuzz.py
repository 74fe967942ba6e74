"""Malformed and hostile frames never kill the consumer: each gets one error frame at most."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatserver.chat.protocol import CLIENT_EVENTS

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


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(batch=st.lists(frames, min_size=1, max_size=5))
async def test_malformed_frames_never_kill_the_consumer(connect, users, chat_options, batch):
    chat_options(RATE_LIMITS=dict.fromkeys(("send", "typing", "read", "manage"), HIGH))
    client = getattr(users, "_fuzz_client", None)
    if client is None:
        client = users._fuzz_client = await connect(users.alice)
    for frame in batch:
        await client.communicator.send_to(text_data=frame)
        # Whatever the frame produced comes first; the heartbeat's reply proves the socket lives.
        await client.send("session.heartbeat", request_id="alive")
        while True:
            reply = await client.recv()
            if reply.get("request_id") == "alive" and reply["eventType"] == "session.heartbeat":
                break
            if reply["eventType"] == "error":
                assert reply["error"]["code"] != 4006, reply
