"""Several daemons, one Redis, one PostgreSQL, behind the real nginx with the shipped site.

Each test starts N ``twistd chat`` daemons on their own Unix sockets and nginx in front of them
(tests/support/nginx.py). Some clients connect straight to one daemon's socket, to put a device
on a chosen daemon; others go through nginx, which picks the daemon.
"""

import asyncio
import itertools
import json
import time

import pytest
import websockets

from tests.support.nginx import NGINX, Nginx
from tests.support.postgres import throwaway_postgres
from tests.support.twistd import Daemon, create_users_with_tokens, daemon_env, unix_socket_accepts

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed (make system-packages)"),
    pytest.mark.postgres,
]

ORIGIN = "http://localhost"
NAMES = ("alice", "bob", "carol", "dave", "erin", "frank")
SEND_RATE, SEND_BURST = 5.0, 20  # the default `send` bucket (docs/protocol.md)


# -- clients --------------------------------------------------------------------------------


class Device:
    """One client socket: a reader task keeps every frame, requests wait for their answer."""

    _ids = itertools.count(1)

    def __init__(self, name, ws):
        self.name = name
        self.ws = ws
        self.frames = []
        self._arrived = asyncio.Event()
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self):
        try:
            async for raw in self.ws:
                self.frames.append(json.loads(raw))
                self._arrived.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self._arrived.set()

    @property
    def closed(self):
        return self.reader.done()

    async def wait_for(self, predicate, timeout=20, start=0):
        """The first frame (from index ``start``) that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        seen = start
        while True:
            for frame in self.frames[seen:]:
                if predicate(frame):
                    return frame
            seen = len(self.frames)
            if self.closed:
                raise ConnectionError(f"{self.name}: socket closed while waiting")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: no matching frame in {timeout}s")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                pass

    async def send(self, event_type, data=None, request_id=None):
        frame = {"event_type": event_type, "data": data or {}}
        if request_id:
            frame["request_id"] = request_id
        await self.ws.send(json.dumps(frame))

    async def request(self, event_type, data=None, timeout=20):
        request_id = f"{self.name}-{next(self._ids)}"
        start = len(self.frames)
        await self.send(event_type, data, request_id)
        return await self.wait_for(lambda f: f.get("request_id") == request_id, timeout, start)

    async def ok(self, event_type, data=None):
        frame = await self.request(event_type, data)
        assert frame["eventType"] != "error", (self.name, frame)
        return frame

    def room_events(self, room_id):
        """Room events (frames with a seq) of one room, as they arrived."""
        return [
            f
            for f in self.frames
            if f.get("data", {}).get("room_id") == room_id and f["data"].get("seq") is not None
        ]

    async def has_seqs(self, room_id, last_seq, timeout=20):
        """Wait until every seq 1..last_seq of the room arrived; return the seqs seen."""
        deadline = time.monotonic() + timeout
        while True:
            seqs = {f["data"]["seq"] for f in self.room_events(room_id)}
            if seqs >= set(range(1, last_seq + 1)) or time.monotonic() > deadline:
                return seqs
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), 0.5)
            except TimeoutError:
                pass

    async def resume(self, room_id, after=0):
        """Every room event after ``after``, paging through limited replies."""
        events = []
        while True:
            reply = await self.ok("session.resume", {"rooms": {str(room_id): after}})
            room = reply["data"]["rooms"][str(room_id)]
            events += room["events"]
            if not room["limited"]:
                return events
            after = room["next_after"]

    async def close(self):
        await self.ws.close()
        await asyncio.wait([self.reader], timeout=10)


# -- the cluster ------------------------------------------------------------------------------


class Cluster:
    def __init__(self, directory, env, count):
        self.directory = directory
        self.env = env
        self.sockets = [directory / f"daphne-{i}.sock" for i in range(1, count + 1)]
        self.daemons = []
        for i, sock in enumerate(self.sockets, 1):
            workdir = directory / f"daemon-{i}"
            workdir.mkdir()
            self.daemons.append(Daemon(["--socket", str(sock)], env, workdir))
        self.nginx = Nginx(directory / "nginx", self.sockets)
        self.devices = []

    def start(self):
        for daemon in self.daemons:  # all at once, then wait for every socket
            daemon.start()
        deadline = time.monotonic() + 60
        for daemon, sock in zip(self.daemons, self.sockets, strict=True):
            while not unix_socket_accepts(sock)():
                if daemon.process.poll() is not None:
                    raise RuntimeError(f"daemon exited:\n{daemon.log()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"daemon did not listen:\n{daemon.log()}")
                time.sleep(0.05)
        self.nginx.start()
        return self

    async def direct(self, index, name, user):
        """A device of ``user`` on daemon ``index``, through its Unix socket."""
        ws = await websockets.unix_connect(
            str(self.sockets[index]),
            f"ws://localhost/messaging/?token={user['token']}",
            origin=ORIGIN,
        )
        return self._keep(Device(name, ws))

    async def via_nginx(self, name, user):
        ws = await websockets.connect(
            f"ws://127.0.0.1:{self.nginx.port}/messaging/?token={user['token']}", origin=ORIGIN
        )
        return self._keep(Device(name, ws))

    def _keep(self, device):
        self.devices.append(device)
        return device

    async def close_devices(self):
        await asyncio.gather(*(d.close() for d in self.devices), return_exceptions=True)

    def stop(self):
        self.nginx.stop()
        for daemon in self.daemons:
            if daemon.process is not None and daemon.process.poll() is None:
                daemon.terminate()
            daemon.kill()

    def tracebacks(self):
        return [d.log() for d in self.daemons if "Traceback" in d.log()]


@pytest.fixture(scope="module")
def database():
    """One throwaway PostgreSQL for the module (the daemons share it, as in production)."""
    with throwaway_postgres("chatserver-cluster-pg-", max_connections=200) as cluster:
        yield cluster.url("chatserver")


@pytest.fixture(scope="module")
def accounts(tmp_path_factory, database, redis_server):
    state = tmp_path_factory.mktemp("cluster-state")
    env = daemon_env(state, redis_server.url, DATABASE_URL=database)
    return env, create_users_with_tokens(env, *NAMES)


@pytest.fixture
def cluster(tmp_path, accounts, redis_url):
    """``cluster(n)``: n daemons behind nginx, started; stopped (by PID) after the test."""
    env, _ = accounts
    started = []

    def start(count):
        directory = tmp_path / f"cluster-{len(started)}"
        directory.mkdir()
        started.append(Cluster(directory, env, count))
        return started[-1].start()

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def users(accounts):
    return accounts[1]


def ids(users, *names):
    return [users[name]["id"] for name in names]


# -- tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 3])
async def test_users_on_different_daemons_see_every_event(cluster, users, count):
    c = cluster(count)
    alice_1 = await c.direct(0, "alice-1", users["alice"])
    alice_2 = await c.direct(count - 1, "alice-2", users["alice"])  # alice on another daemon
    bob = await c.direct(1, "bob", users["bob"])
    carol = await c.via_nginx("carol", users["carol"])
    dave = await c.via_nginx("dave", users["dave"])
    try:
        created = await alice_1.ok(
            "room.create",
            {"type": "group", "name": "cluster", "members": ids(users, "bob", "carol")},
        )
        room = created["data"]["room_id"]
        for device in (alice_2, bob, carol):  # room events reach every daemon
            await device.wait_for(lambda f: f.get("eventType") == "roomcreate.dispatch")
        m1 = await alice_1.ok("message.send", {"room_id": room, "content": "from daemon 1"})
        message_id = m1["data"]["message"]["id"]
        await bob.ok(
            "message.send", {"room_id": room, "content": "re", "parent_message_id": message_id}
        )
        await alice_2.ok(
            "message.modify", {"message_id": message_id, "action": "update", "content": "edited"}
        )
        await carol.ok("message.react", {"message_id": message_id, "action": "add", "emoji": "👍"})

        await bob.send("message.typing", {"room_id": room, "state": "start"})
        for device in (alice_1, alice_2, carol):
            typing = await device.wait_for(lambda f: f.get("eventType") == "messagetyping.dispatch")
            assert typing["data"]["user"]["id"] == users["bob"]["id"]

        await carol.ok("message.read", {"rooms": {str(room): 5}})
        for device in (alice_1, alice_2, bob):
            receipt = await device.wait_for(
                lambda f: (
                    f.get("eventType") == "readreceipt.dispatch"
                    and f["data"]["user"]["id"] == users["carol"]["id"]
                )
            )
            assert receipt["data"]["receipts"] == [{"room_id": room, "last_read_seq": 5}]

        await bob.send("message.acknowledged", {"rooms": {str(room): 2}})  # alice's message
        for device in (alice_1, alice_2):
            delivered = await device.wait_for(
                lambda f: f.get("eventType") == "messagedelivered.dispatch"
            )
            assert delivered["data"]["user"]["id"] == users["bob"]["id"]

        # Membership across daemons: dave (behind nginx) is added from one daemon, speaks,
        # and is removed from another.
        await alice_1.ok("room.add_members", {"room_id": room, "members": ids(users, "dave")})
        await dave.wait_for(lambda f: f.get("eventType") == "roomaddmembers.dispatch")
        await dave.ok("message.send", {"room_id": room, "content": "hi from nginx"})
        await alice_2.ok("room.remove_members", {"room_id": room, "members": ids(users, "dave")})
        await dave.wait_for(lambda f: f.get("eventType") == "roomexit.dispatch")
        last = await alice_1.ok("message.send", {"room_id": room, "content": "after dave"})
        last_seq = last["data"]["seq"]
        assert last_seq == 9  # create, 3 messages, edit, reaction, add, remove, message

        expected = list(range(1, last_seq + 1))
        for device in (alice_1, alice_2, bob, carol):
            assert await device.has_seqs(room, last_seq) >= set(expected), device.name
        assert not any(f.get("eventType") == "messagetyping.dispatch" for f in bob.frames)
        assert not any(f["data"]["seq"] == last_seq for f in dave.room_events(room))

        # Both of alice's devices: every room event once, and a resume replays them in order.
        live_types = None
        for device in (alice_1, alice_2):
            live = sorted((f["data"]["seq"], f["eventType"]) for f in device.room_events(room))
            assert [seq for seq, _ in live] == expected, (device.name, live)
            replay = await device.resume(room)
            replayed = [(e["data"]["seq"], e["eventType"]) for e in replay]
            assert replayed == live, device.name
            live_types = live_types or live
            assert live == live_types  # both devices saw the same events
        assert c.tracebacks() == []
    finally:
        await c.close_devices()

    # The flow through nginx used the shipped log format: the path without the token.
    log = ""
    for _ in range(100):
        log = c.nginx.access_log()
        if log.count("GET /messaging/") >= 2:
            break
        await asyncio.sleep(0.1)
    assert log.count('GET /messaging/ HTTP/1.1" 101') >= 2, log
    assert "token=" not in log


async def test_member_limit_holds_across_daemons(cluster, users):
    c = cluster(2)
    alice = await c.direct(0, "alice", users["alice"])
    bob = await c.direct(1, "bob", users["bob"])
    carol = await c.direct(0, "carol", users["carol"])
    dave = await c.direct(1, "dave", users["dave"])
    try:
        for _ in range(2):  # two admins on two daemons fill the last place at the same time
            created = await alice.ok(
                "room.create",
                {"type": "group", "name": "full", "members": ids(users, "bob"), "member_limit": 3},
            )
            room = created["data"]["room_id"]
            await alice.ok(
                "room.modify",
                {"room_id": room, "action": "add_admin", "members": ids(users, "bob")},
            )
            answers = await asyncio.gather(
                alice.request(
                    "room.add_members", {"room_id": room, "members": ids(users, "carol")}
                ),
                bob.request("room.add_members", {"room_id": room, "members": ids(users, "dave")}),
            )
            kinds = sorted(a["eventType"] for a in answers)
            assert kinds == ["error", "roomaddmembers.dispatch"], answers
            assert [a["error"]["code"] for a in answers if a["eventType"] == "error"] == [4005]
            info = await alice.ok("room.info", {"room_id": room})
            assert len(info["data"]["members"]) == 3

        # Two users on two daemons join the last place of a public room at the same time.
        created = await alice.ok(
            "room.create", {"type": "group", "name": "open", "is_public": True, "member_limit": 2}
        )
        room = created["data"]["room_id"]
        answers = await asyncio.gather(
            carol.request("room.join", {"room_id": room}),
            dave.request("room.join", {"room_id": room}),
        )
        assert sorted(a["eventType"] for a in answers) == ["error", "roomaddmembers.dispatch"]
        info = await alice.ok("room.info", {"room_id": room})
        assert len(info["data"]["members"]) == 2
        assert c.tracebacks() == []
    finally:
        await c.close_devices()


async def test_one_users_send_budget_is_shared_by_every_daemon(cluster, users):
    c = cluster(2)
    erin_1 = await c.direct(0, "erin-1", users["erin"])
    erin_2 = await c.direct(1, "erin-2", users["erin"])
    try:
        room = (await erin_1.ok("room.create", {"type": "group", "name": "budget"}))["data"][
            "room_id"
        ]
        allowed_1 = 0
        for n in range(SEND_BURST + 20):
            reply = await erin_1.request("message.send", {"room_id": room, "content": f"a{n}"})
            if reply["eventType"] == "error":
                assert reply["error"]["code"] == 4029
                break
            allowed_1 += 1
        empty_at = time.monotonic()
        assert allowed_1 >= SEND_BURST
        # The other daemon, and a fresh socket through nginx: the same, empty bucket, refilled
        # only by the time that passed. (With a bucket per process, erin-2 would get all ten.)
        erin_3 = await c.via_nginx("erin-3", users["erin"])
        allowed_2 = 0
        for n in range(10):
            for device in (erin_2, erin_3):
                reply = await device.request("message.send", {"room_id": room, "content": f"b{n}"})
                if reply["eventType"] == "error":
                    assert reply["error"]["code"] == 4029
                else:
                    allowed_2 += 1
        refilled = SEND_RATE * (time.monotonic() - empty_at)
        assert allowed_2 <= refilled + 1, (allowed_2, refilled)
    finally:
        await c.close_devices()


class Member:
    """A user whose device goes through nginx, reconnects when its socket drops and resends
    what was not acknowledged (same client_msg_id, as docs/protocol.md advises)."""

    def __init__(self, cluster, name, user):
        self.cluster, self.name, self.user = cluster, name, user
        self.device = None
        self.acked = {}  # message id -> seq, from the replies this member got
        self.reconnects = 0

    async def connect(self, attempts=200):
        for _ in range(attempts):
            try:
                self.device = await self.cluster.via_nginx(self.name, self.user)
                return self.device
            except (OSError, websockets.InvalidHandshake):
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} could not reconnect through nginx")

    async def send_messages(self, room, count, pause=0.15):
        sent = 0
        while sent < count:
            client_msg_id = f"{self.name}-{sent}"
            data = {"room_id": room, "content": client_msg_id, "client_msg_id": client_msg_id}
            try:
                reply = await self.device.request("message.send", data)
            except (ConnectionError, websockets.ConnectionClosed):
                self.reconnects += 1
                await self.connect()
                continue
            if reply["eventType"] == "error":
                assert reply["error"]["code"] == 4029, reply
                await asyncio.sleep(0.3)
                continue
            message = reply["data"]["message"]
            self.acked[message["id"]] = message["seq"]
            sent += 1
            await asyncio.sleep(pause)


async def test_kill_9_of_one_daemon_loses_nothing_acknowledged(cluster, users):
    c = cluster(2)
    setup = await c.direct(1, "setup", users["alice"])  # on the daemon that survives
    names = ("alice", "bob", "carol", "dave")
    created = await setup.ok(
        "room.create", {"type": "group", "name": "crash", "members": ids(users, *names[1:])}
    )
    room = created["data"]["room_id"]
    await setup.close()
    members = [Member(c, name, users[name]) for name in names]
    for member in members:  # least_conn spreads them over both daemons
        await member.connect()
    per_member = 12
    senders = asyncio.gather(*(m.send_messages(room, per_member) for m in members))
    try:
        deadline = time.monotonic() + 30
        while sum(len(m.acked) for m in members) < 8:  # under traffic
            assert time.monotonic() < deadline, "no traffic"
            await asyncio.sleep(0.05)
        c.daemons[0].process.kill()  # SIGKILL by PID
        c.daemons[0].process.wait()
        await asyncio.wait_for(senders, 120)
        assert any(m.reconnects for m in members), "no client was on the killed daemon"

        acked = {}
        for member in members:
            acked.update(member.acked)
        assert len(acked) == per_member * len(members)
        for member in members:
            events = await member.device.resume(room)
            seqs = [e["data"]["seq"] for e in events]
            assert seqs == list(range(1, len(seqs) + 1)), (member.name, seqs)
            messages = {
                e["data"]["message"]["id"]: e["data"]["seq"]
                for e in events
                if e["eventType"] == "message.dispatch"
            }
            missing = {i: s for i, s in acked.items() if messages.get(i) != s}
            assert not missing, (member.name, missing)
        assert "Traceback" not in c.daemons[1].log()
    finally:
        if not senders.done():
            senders.cancel()
        await c.close_devices()


def test_the_site_under_test_is_the_shipped_one(tmp_path):
    """Only the listener, TLS, upstream servers and log paths differ from the shipped file."""
    from tests.support.nginx import SITE, site_for_test

    shipped = SITE.read_text()
    sockets = [tmp_path / "daphne-1.sock", tmp_path / "daphne-2.sock"]
    site = site_for_test(shipped, sockets, 8123, tmp_path)

    def block(text, opening, end="\n    }\n"):
        start = text.index(opening)
        return text[start : text.index(end, start)]

    proxy = "    location / {\n        proxy_pass"
    assert block(site, proxy) == block(shipped, proxy)
    assert block(site, "map $http_upgrade", "\n}\n") == block(shipped, "map $http_upgrade", "\n}\n")
    assert block(site, "log_format", ";\n") == block(shipped, "log_format", ";\n")
    upstream = site[site.index("upstream chatserver {") :]
    upstream = upstream[: upstream.index("\n}")]
    servers = [line.strip() for line in upstream.splitlines() if line.strip().startswith("server")]
    assert servers == [f"server unix:{path} fail_timeout=0;" for path in sockets]
    assert "least_conn;" in upstream and "keepalive 32;" in upstream
    assert "listen 127.0.0.1:8123;" in site and "ssl" not in site.replace("ssl_", "")
    assert "return 301" not in site


def test_nginx_caps_login_attempts_per_address(cluster):
    """The shipped site's limit_req zone answers 429 itself once an address exceeds its burst
    of token requests; what passes reaches a daemon (401 for wrong credentials).

    The attempts go out together: one after the other, each costs a password hash, and on a
    loaded machine the zone refills (30 a minute) as fast as they come."""
    import http.client
    from concurrent.futures import ThreadPoolExecutor

    c = cluster(1)

    def attempt(n):
        connection = http.client.HTTPConnection("127.0.0.1", c.nginx.port, timeout=60)
        body = json.dumps({"username": f"nobody{n}", "password": "wrong"})
        headers = {"Content-Type": "application/json", "Host": "localhost"}
        connection.request("POST", "/api/token/", body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        connection.close()
        return response.status, response.getheader("Content-Type", "")

    with ThreadPoolExecutor(25) as pool:
        answers = list(pool.map(attempt, range(25)))
    by_nginx = [kind for status, kind in answers if status == 429 and "html" in kind]
    passed = [kind for status, kind in answers if status == 401]
    assert len(by_nginx) + len(passed) == 25, answers  # nothing else answered
    # The burst (10) and the first request pass, a refill or two at most; nginx refuses the rest.
    assert 11 <= len(passed) <= 13, answers
    assert not c.tracebacks()
