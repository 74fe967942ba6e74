"""A client that stops reading, against the real daemon: its socket is closed past
MAX_SEND_BUFFER_BYTES, the daemon's memory stays bounded, and a member that reads gets every
message of the room (the unit tests are in test_slow_reader.py)."""

import asyncio
import base64
import json
import os
import socket
import struct
import time

import pytest
import websockets

from tests.support.processes import free_port
from tests.support.twistd import Daemon, create_users_with_tokens, daemon_env, tcp_port_accepts

pytestmark = pytest.mark.timeout(120)

ORIGIN = "http://localhost"
CONTENT = "é" * 4000  # MAX_MESSAGE_LENGTH characters, 24 KB in a frame (JSON escapes them)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class RawClient:
    """A WebSocket client on a plain socket with a small receive buffer that, after the
    handshake, never reads."""

    def __init__(self, port, token):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /messaging/?token={token} HTTP/1.1\r\nHost: localhost\r\n"
                f"Origin: {ORIGIN}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.sock.settimeout(10)
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.sock.recv(1)  # byte by byte: leave the frames after it unread
        assert response.startswith(b"HTTP/1.1 101"), response

    def send(self, event_type, data, request_id):
        payload = json.dumps({"event_type": event_type, "data": data, "request_id": request_id})
        payload = payload.encode()
        mask = os.urandom(4)
        header = struct.pack("!BB", 0x81, 0x80 | 126) + struct.pack("!H", len(payload))
        if len(payload) < 126:
            header = struct.pack("!BB", 0x81, 0x80 | len(payload))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        try:
            self.sock.sendall(header + mask + masked)
        except (ConnectionResetError, BrokenPipeError):
            self.reset = True  # the server closed the connection

    reset = False

    def closed_by_server(self, timeout=30):
        """Read what is left until the server closes the connection (EOF or reset)."""
        if self.reset:
            return True
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(1 << 16):
                pass
        except ConnectionResetError:
            pass
        return True


async def request(ws, event_type, data, frames):
    request_id = f"{event_type}-{time.monotonic_ns()}"
    await ws.send(json.dumps({"event_type": event_type, "data": data, "request_id": request_id}))
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
        if frame.get("request_id") == request_id:
            return frame
        frames.append(frame)


async def test_a_client_that_stops_reading_is_closed_and_memory_stays_bounded(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    env = daemon_env(state)
    users = create_users_with_tokens(env, "alice", "bob", "carol")
    port = free_port()
    daemon = Daemon(["--port", str(port)], env, tmp_path).start(tcp_port_accepts(port))
    peak = [0]

    async def watch_memory():
        while True:
            peak[0] = max(peak[0], rss_kib(daemon.process.pid))
            await asyncio.sleep(0.02)

    def connect(name):
        url = f"ws://127.0.0.1:{port}/messaging/?token={users[name]['token']}"
        return websockets.connect(url, origin=ORIGIN, max_size=None)

    try:
        async with connect("alice") as alice, connect("carol") as carol:
            noise = []
            created = await request(
                alice,
                "room.create",
                {
                    "type": "group",
                    "name": "slow",
                    "members": [users["bob"]["id"], users["carol"]["id"]],
                },
                noise,
            )
            room_id = created["data"]["room"]["id"]
            for _ in range(20):  # the send class's burst
                sent = await request(
                    alice, "message.send", {"room_id": room_id, "content": CONTENT}, noise
                )
                assert sent["eventType"] == "message.dispatch", sent

            bob = RawClient(port, users["bob"]["token"])
            await asyncio.sleep(0.5)  # let its connect finish before the baseline
            baseline = rss_kib(daemon.process.pid)
            watcher = asyncio.ensure_future(watch_memory())
            # Bob asks for the room's history (20 x 24 KB) within the read rate (burst 60,
            # 20/s) and reads nothing; Alice goes on sending within the send rate (5/s).
            for n in range(60):
                bob.send("room.messages", {"room_id": room_id, "limit": 100}, f"h{n}")
            for n in range(10):
                sent = await request(
                    alice, "message.send", {"room_id": room_id, "content": f"later {n}"}, noise
                )
                assert sent["eventType"] == "message.dispatch", sent
                for k in range(4):
                    bob.send("room.messages", {"room_id": room_id, "limit": 100}, f"h{n}-{k}")
                await asyncio.sleep(0.25)

            # Carol, who reads, got every message of the room, in order.
            seqs = []
            while len(seqs) < 30:
                frame = json.loads(await asyncio.wait_for(carol.recv(), 20))
                if frame.get("eventType") == "message.dispatch":
                    seqs.append(frame["data"]["seq"])
            assert seqs == list(range(seqs[0], seqs[0] + 30))

            assert bob.closed_by_server()
            watcher.cancel()
            growth_mib = (peak[0] - baseline) / 1024
            print(f"RSS baseline {baseline / 1024:.1f} MiB, peak growth {growth_mib:.1f} MiB")
            # Without the bound the daemon holds every answer Bob asked for: 100 x ~0.5 MB.
            assert growth_mib < 30, f"daemon grew by {growth_mib:.1f} MiB"
            log = daemon.log()
            assert "over MAX_SEND_BUFFER_BYTES" in log, log[-3000:]
        daemon.stop_cleanly()
    finally:
        daemon.kill()
