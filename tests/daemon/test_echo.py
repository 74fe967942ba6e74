"""The conformance settings' echo route on a real twistd: every message comes back as sent,
empty text and empty binary messages included (plain Daphne drops those)."""

import asyncio

import pytest
import websockets

from tests.support.processes import free_port
from tests.support.twistd import Daemon, daemon_env, manage, tcp_port_accepts

pytestmark = pytest.mark.timeout(90)


async def test_echo_returns_empty_and_nonempty_text_and_binary_messages(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    env = daemon_env(state, DJANGO_SETTINGS_MODULE="chatserver.settings.conformance")
    manage(env, "migrate", "--noinput", "-v", "0")
    port = free_port()
    daemon = Daemon(["--port", str(port)], env, tmp_path).start(tcp_port_accepts(port))
    try:
        async with websockets.connect(f"ws://127.0.0.1:{port}/echo/") as ws:
            for message in ["", b"", "héllo", b"\x00\xff", "x" * 70_000, ""]:
                await ws.send(message)
                echoed = await asyncio.wait_for(ws.recv(), 10)
                assert type(echoed) is type(message) and echoed == message
        daemon.stop_cleanly()
    finally:
        daemon.kill()


def test_the_asgi_send_path_sends_empty_messages():
    """Daphne's handle_reply would drop these (it tests the payload for truthiness)."""
    from .test_direct_send import open_protocol

    _, protocol, peer = open_protocol()
    protocol.trackedTimings = None
    protocol.send_state = protocol.SEND_STATE_GROUND
    protocol.client_addr = ["127.0.0.1", 1]
    protocol.handle_reply({"type": "websocket.send", "text": ""})
    protocol.handle_reply({"type": "websocket.send", "bytes": b""})
    protocol.handle_reply({"type": "websocket.send", "text": "a", "bytes": None})
    protocol.transport.doWrite()
    assert peer.recv(100) == b"\x81\x00\x82\x00\x81\x01a"
    with pytest.raises(ValueError):
        protocol.handle_reply({"type": "websocket.send", "text": "", "bytes": b""})
    protocol.transport.stopWriting()
