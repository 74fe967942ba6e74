"""Memory per idle socket in the real daemon, traced by tracemalloc through the manhole.

A real ``twistd chat`` on Redis holds one authenticated socket per user (as the benchmark's idle
scenario does). Inside the daemon, ``memory_probe`` starts tracemalloc once a few sockets are
warm, then counts what connecting ``SOCKETS`` more (each answering one heartbeat) left allocated:
bytes per socket, not timing, so the bound does not depend on the machine's load.

``python -m tests.daemon.test_memory_per_socket 1000`` prints the whole breakdown (by package,
allocation site and object type) for that many sockets.
"""

import asyncio
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

import asyncssh
import pytest

from tests.support.processes import free_port, tcp_port_accepts
from tests.support.redis import RedisServer
from tests.support.twistd import Daemon, create_users_with_tokens, daemon_env

from .clients import request, tcp_client

pytestmark = pytest.mark.timeout(300)

PROBE = Path(__file__).with_name("memory_probe.py")
WARM = 10  # sockets connected before tracing starts (first-use caches, imports)
SOCKETS = 200
# Traced KiB per idle socket: what each change bought is in docs/performance.md ("Memory per
# idle socket"). The bound leaves room for noise (runs agree within 1%), not for a regression.
MAX_KIB_PER_SOCKET = 18.0


class ManholeDaemon:
    """The daemon with an SSH manhole; ``run(code)`` executes one line in its Python shell."""

    def __init__(self, workdir, redis_url):
        self.workdir = Path(workdir)
        self.key = asyncssh.generate_private_key("ssh-ed25519")
        keys = self.workdir / "authorized_keys"
        keys.write_text(self.key.export_public_key().decode())
        state = self.workdir / "state"
        state.mkdir()
        # Production's checks (DEBUG off: Django would keep every query in memory otherwise).
        self.env = daemon_env(
            state,
            redis_url,
            DEBUG="0",
            SECRET_KEY=secrets.token_urlsafe(50),
            CHATSERVER_INACTIVITY_THRESHOLD="900",  # idle without heartbeats meanwhile
        )
        self.port, self.ssh_port = free_port(), free_port()
        self.daemon = Daemon(
            [
                "--port", str(self.port),
                "--manhole", f"tcp:{self.ssh_port}:interface=127.0.0.1",
                "--manhole-keys", str(keys),
            ],
            self.env,
            self.workdir,
        )  # fmt: skip
        self.conn = self.shell = None

    async def start(self, users):
        self.tokens = create_users_with_tokens(self.env, *users)
        ssh, http = tcp_port_accepts(self.ssh_port), tcp_port_accepts(self.port)
        self.daemon.start(lambda: ssh() and http())
        self.conn = await asyncssh.connect(
            "127.0.0.1",
            self.ssh_port,
            username="operator",
            known_hosts=None,
            agent_path=None,
            client_keys=[self.key],
        )
        self.shell = await self.conn.create_process(term_type="dumb", term_size=(200, 40))
        self.run(f"exec(open({str(PROBE)!r}).read())")

    def run(self, line):
        self.shell.stdin.write(line + "\r")

    async def call(self, line_for_path, timeout=120):
        """Run a probe call that writes its result to a file; return the result."""
        path = self.workdir / f"probe-{time.monotonic_ns()}.json"
        self.run(line_for_path(str(path)))
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"probe wrote nothing:\n{self.daemon.log()[-3000:]}")
            await asyncio.sleep(0.1)
        return json.loads(path.read_text())

    async def close(self):
        if self.conn is not None:
            self.shell.stdin.write_eof()
            self.conn.close()
        self.daemon.kill()


async def open_idle_sockets(port, tokens, concurrency=20):
    """Connect one socket per token; each answers a heartbeat, so its connect is complete."""
    sockets, gate = [], asyncio.Semaphore(concurrency)

    async def one(token):
        async with gate:
            ws = await tcp_client(port, token, ping_interval=None, max_queue=None).__aenter__()
            reply = await request(ws, "session.heartbeat")
            assert reply["eventType"] == "session.heartbeat", reply
            sockets.append(ws)

    await asyncio.gather(*(one(token) for token in tokens))
    return sockets


async def measure(workdir, redis_url, count, frames=1):
    """Per-socket memory of ``count`` idle sockets in a fresh daemon."""
    names = [f"idle{n}" for n in range(WARM + count)]
    daemon = ManholeDaemon(workdir, redis_url)
    sockets = []
    try:
        await daemon.start(names)
        tokens = [daemon.tokens[name]["token"] for name in names]
        sockets += await open_idle_sockets(daemon.port, tokens[:WARM])
        await daemon.call(lambda path: f"begin({path!r}, {frames})")
        # Traced connects are slow: few at a time, within Autobahn's opening handshake timeout.
        sockets += await open_idle_sockets(daemon.port, tokens[WARM:], concurrency=4)
        return await daemon.call(lambda path: f"finish({path!r}, {count})")
    except Exception:
        print(daemon.daemon.log()[-4000:], file=sys.stderr)
        raise
    finally:
        if os.environ.get("MEMORY_PROBE_LOG"):
            shutil.copy(daemon.daemon.log_path, os.environ["MEMORY_PROBE_LOG"])
        for ws in sockets:
            ws.transport.abort()
        await daemon.close()


async def test_an_idle_socket_costs_the_daemon_less_than_the_bound(tmp_path, redis_url):
    result = await measure(tmp_path, redis_url, SOCKETS)
    kib = result["traced_bytes_per_socket"] / 1024
    assert 0 < kib < MAX_KIB_PER_SOCKET, json.dumps(result, indent=1)[:6000]


async def test_the_application_queue_hands_items_over_in_order_and_loses_none_on_cancel():
    from chatserver.daemon.daphne_service import ApplicationQueue

    queue = ApplicationQueue()
    queue.put_nowait(1)
    queue.put_nowait(2)
    assert [await queue.get(), await queue.get()] == [1, 2] and queue.empty()
    first = asyncio.ensure_future(queue.get())
    second = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait(3)
    first.cancel()  # woken, then cancelled before it ran: the item stays for the next getter
    assert await second == 3
    assert queue.empty() and queue._waiters is None and queue._items is None


def test_an_open_socket_forgets_its_handshake_but_keeps_its_path():
    # Imported here: ``python -m`` runs this module without Django's settings.
    from collections import deque

    from autobahn.websocket.types import ConnectionRequest
    from twisted.internet import reactor

    from chatserver.daemon.daphne_service import DaphneService

    server = DaphneService(None, ["tcp:0:interface=127.0.0.1"], reactor).server
    protocol = server.ws_factory.buildProtocol(None)
    headers = [(b"origin", b"http://localhost"), (b"cookie", b"sessionid=x")]
    scope = {"type": "websocket", "headers": headers}
    protocol.__dict__.update(
        http_request_data=b"GET /messaging/ HTTP/1.1\r\n...",
        http_headers={"origin": "http://localhost"},
        http_request_params={"token": ["t"]},
        request=ConnectionRequest(
            peer="tcp:127.0.0.1:1", headers={"origin": "http://localhost"}, host="localhost",
            path="/messaging/", params={}, version=13, origin="http://localhost",
            protocols=[], extensions=[],
        ),
        clean_headers=headers,
        send_queue=deque(),
    )  # fmt: skip
    protocol.forget_handshake()
    assert "http_headers" not in vars(protocol) and "http_request_data" not in vars(protocol)
    assert "send_queue" not in vars(protocol) and not protocol.send_queue
    assert protocol.request.path == "/messaging/"  # Daphne logs it on every state change
    assert scope["headers"] == []  # the application's scope shares the list


def main(count, frames):
    tmp = Path(tempfile.mkdtemp(prefix="memory-per-socket-"))
    (tmp / "redis").mkdir()
    (tmp / "daemon").mkdir()
    redis = RedisServer(tmp / "redis").start()
    try:
        result = asyncio.run(measure(tmp / "daemon", redis.url, count, frames))
    finally:
        redis.stop()
    shutil.rmtree(tmp)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    args = [int(arg) for arg in sys.argv[1:]]
    main(args[0] if args else SOCKETS, args[1] if len(args) > 1 else 16)
