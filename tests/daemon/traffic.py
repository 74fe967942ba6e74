"""Chat traffic for the fault tests: members that send, count what reaches them, and resume.

A Member reads its socket in the background and keeps every frame of the room by ``seq``, as a
client following docs/protocol.md does. ``send_until_stored`` resends a failed message with the
same ``client_msg_id`` while the server answers 4503 (temporarily unavailable); any other error
fails the test. ``catch_up`` resumes from the last gap-free ``seq`` and checks what the replay
adds. The counters are what the tests assert on: nothing lost, nothing twice, in ``seq`` order.
"""

import asyncio
import contextlib
import json
import re
import signal
import time
from collections import Counter

import psycopg
import websockets

from chatserver.chat.protocol import ERROR_RATE_LIMITED, ERROR_UNAVAILABLE

from .clients import request, unix_client

RETRYABLE = {ERROR_UNAVAILABLE, ERROR_RATE_LIMITED}


class Member:
    """One user's socket in one room."""

    def __init__(self, name, ws, room_id):
        self.name = name
        self.ws = ws
        self.room_id = room_id
        self.frames = {}  # seq -> frame data of every room event seen (live, replies, resume)
        self.live = Counter()  # seq -> times a live frame (broadcast or reply) carried it
        self.acknowledged = {}  # client_msg_id -> seq of the message.dispatch answering it
        self.errors = Counter()  # error code -> count, for this member's sends
        self.closed = None  # close code, once the socket closed
        self._waiting = {}  # request_id -> Future of the reply
        self._ids = 0
        self._reader = asyncio.ensure_future(self._read())
        self._heartbeats = None

    async def _read(self):
        try:
            async for text in self.ws:
                frame = json.loads(text)
                waiter = self._waiting.pop(frame.get("request_id"), None)
                data = frame.get("data") or {}
                if data.get("room_id") == self.room_id and data.get("seq") is not None:
                    self.live[data["seq"]] += 1
                    self.frames[data["seq"]] = frame
                if waiter is not None and not waiter.done():
                    waiter.set_result(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = self.ws.close_code
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionError(f"{self.name}: socket closed"))

    async def request(self, event_type, data, timeout=30):
        self._ids += 1
        request_id = f"{self.name}-{self._ids}"
        if self._reader.done():
            raise ConnectionError(f"{self.name}: socket closed")
        reply = self._waiting[request_id] = asyncio.get_running_loop().create_future()
        try:
            await self.ws.send(
                json.dumps({"event_type": event_type, "data": data, "request_id": request_id})
            )
        except websockets.ConnectionClosed:
            self._waiting.pop(request_id, None)
            raise ConnectionError(f"{self.name}: socket closed") from None
        return await asyncio.wait_for(reply, timeout)

    async def send_until_stored(self, client_msg_id, content, deadline):
        """Send, resending on a retryable error until a message.dispatch answers it."""
        data = {"room_id": self.room_id, "content": content, "client_msg_id": client_msg_id}
        while True:
            reply = await self.request("message.send", data)
            if reply["eventType"] == "message.dispatch":
                self.acknowledged[client_msg_id] = reply["data"]["seq"]
                return
            code = reply["error"]["code"]
            self.errors[code] += 1
            assert code in RETRYABLE, f"{self.name}: {reply}"
            assert time.monotonic() < deadline, f"{self.name}: still {reply} at the deadline"
            await asyncio.sleep(0.2)

    async def catch_up(self):
        """session.resume from the last gap-free seq; returns the seqs the replay added."""
        added = []
        while True:
            cursor = 0
            while cursor + 1 in self.frames:
                cursor += 1
            reply = await self.request("session.resume", {"rooms": {str(self.room_id): cursor}})
            assert reply["eventType"] == "session.resume", reply
            room = reply["data"]["rooms"][str(self.room_id)]
            seqs = [event["data"]["seq"] for event in room["events"]]
            assert seqs == sorted(set(seqs)) and all(s > cursor for s in seqs), seqs
            for event in room["events"]:
                seq = event["data"]["seq"]
                if seq not in self.frames:  # a seq already held is ignored (protocol.md)
                    self.frames[seq] = event
                    added.append(seq)
            if not room["limited"]:
                return added, room["last_seq"]

    def messages(self):
        """``[(seq, client_msg_id, content)]`` of the message.dispatch frames held, by seq."""
        return [
            (seq, frame["data"]["message"]["client_msg_id"], frame["data"]["message"]["content"])
            for seq, frame in sorted(self.frames.items())
            if frame["eventType"] == "message.dispatch"
        ]

    def keep_alive(self, interval):
        """session.heartbeat every ``interval`` seconds; an error answer (4503 while the
        database is away) is counted, the next heartbeat tries again."""

        async def beat():
            while True:
                await asyncio.sleep(interval)
                reply = await self.request("session.heartbeat", {})
                if reply["eventType"] == "error":
                    self.errors[reply["error"]["code"]] += 1
                    assert reply["error"]["code"] in RETRYABLE, f"{self.name}: {reply}"

        self._heartbeats = asyncio.ensure_future(beat())

    async def close(self):
        if self._heartbeats is not None:
            if self._heartbeats.done():
                self._heartbeats.result()  # a heartbeat answered with a wrong error fails here
            self._heartbeats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeats
        await self.ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def send_traffic(members, stop, deadline, pause=0.25):
    """Every member sends until ``stop`` is set (each message stored or the test fails);
    ``pause`` keeps each user under the default send rate limit (5/s)."""

    async def sender(member):
        n = 0
        while not stop.is_set():
            n += 1
            await member.send_until_stored(
                f"{member.room_id}-{member.name}-{n}", f"{member.name} says {n}", deadline
            )
            await asyncio.sleep(pause)

    await asyncio.gather(*(sender(member) for member in members))


def check_everyone_has_everything(members, stored, last_seq):
    """Each member holds every stored message once, in seq order, with no gap in the room's
    seqs; each acknowledged send is stored under the seq its answer named."""
    stored_by_id = {client_msg_id: seq for seq, client_msg_id, _ in stored}
    assert len(stored_by_id) == len(stored), "a client_msg_id stored twice"
    for member in members:
        assert sorted(member.frames) == list(range(1, last_seq + 1)), member.name
        assert member.messages() == stored, member.name
        twice = {seq: n for seq, n in member.live.items() if n > 1}
        assert not twice, f"{member.name} got seqs more than once: {twice}"
        for client_msg_id, seq in member.acknowledged.items():
            assert stored_by_id.get(client_msg_id) == seq, (member.name, client_msg_id)
    acknowledged = sum(len(member.acknowledged) for member in members)
    assert acknowledged == len(stored), "a message stored that no send was answered for"


async def open_room(sock, users, names):
    """The first user creates a group room with the others; returns its id."""
    owner, *others = names
    async with unix_client(sock, users[owner]["token"]) as ws:
        created = await request(
            ws,
            "room.create",
            {"type": "group", "name": "faults", "members": [users[n]["id"] for n in others]},
        )
        assert created["eventType"] == "roomcreate.dispatch", created
        return created["data"]["room"]["id"]


async def join(sock, users, names, room_id):
    """A connected Member for each user, with the notification frame of its connect read."""
    members = []
    for name in names:
        ws = await unix_client(sock, users[name]["token"])
        assert json.loads(await ws.recv())["eventType"] == "chat.notifications"
        members.append(Member(name, ws, room_id))
    return members


def acknowledged(members):
    return sum(len(member.acknowledged) for member in members)


async def wait_until(condition, traffic=None, timeout=60):
    """Poll ``condition()`` (every 50 ms); a traffic task that failed fails the wait."""
    deadline = time.monotonic() + timeout
    while not condition():
        if traffic is not None and traffic.done():
            traffic.result()
            raise AssertionError("the traffic stopped")
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def stored_messages(database_url, room_id):
    """``[(seq, client_msg_id, content)]`` of the room, read from PostgreSQL directly."""
    with psycopg.connect(database_url) as connection:
        return connection.execute(
            "SELECT seq, client_msg_id, content FROM chat_message WHERE room_id = %s ORDER BY seq",
            [room_id],
        ).fetchall()


def stop_cleanly(daemon, *allowed):
    """Daemon.stop_cleanly, except that tracebacks of the fault's own exceptions (``allowed``:
    a lost Redis connection, logged by channels-redis and the local groups) may be in the log:
    no other may."""
    code = daemon.terminate()
    log = daemon.log()
    assert code in (0, -signal.SIGTERM), f"exit {code}:\n{log}"
    assert "Server Shut Down." in log, log
    for traceback in log.split("Traceback (most recent call last):")[1:]:
        raised = re.findall(r"^\t([\w.]+(?:Error|Exception)):", traceback, flags=re.M)
        assert raised and raised[-1] in allowed, traceback
    return log
