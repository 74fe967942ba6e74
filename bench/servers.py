"""The five servers the bench compares, and how the load client speaks to each.

(a) ``daemon``    our ``twistd -n chat`` (Daphne in-process), bench settings = production + limits
                  (the production layer: channels-redis pub/sub)
(a') ``daemon-core`` the same daemon on the core layer: what the layer choice buys
(a'') ``daemon-bare`` the daemon with the rate limiter and presence off: what they cost (not in
                  a full run; ask for it with ``--servers daemon,daemon-bare``)
(b) ``daphne``    the same ASGI application under the plain ``daphne`` command  (the baseline),
                  on the stock core layer (``--layer``)
(c) ``uvicorn``   the same ASGI application under ``uvicorn``, layer as (b)
(d) ``reference`` django-realtime-chat-messaging under ``daphne`` (its own venv and project)
(e) ``ceiling``   bare Autobahn/Twisted broadcast, pre-encoded frames, no ASGI (bench/ceiling.py)
"""

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
VENV_BIN = Path(sys.executable).parent
REF_VENV = BENCH / ".venv-ref"
REF_PROJECT = BENCH / "ref_project"

OURS_SEND = (
    '{"event_type":"message.send","data":{"room_id":@ROOM@,"content":"@CONTENT@",'
    '"client_msg_id":"@CMID@"},"request_id":"@CMID@"}'
)
OURS_HEARTBEAT = '{"event_type":"session.heartbeat","data":{},"request_id":"hb"}'
REF_SEND = '{"event_type":"message.send","data":{"room_id":@ROOM@,"content":"@CONTENT@"}}'
REF_HEARTBEAT = '{"event_type":"session.heartbeat","data":{}}'


@dataclass
class Server:
    key: str
    label: str
    flavor: str  # "ours" | "ref" | "ceiling": setup, URLs and frames
    needs_postgres: bool = True
    needs_redis: bool = True
    send_template: str = OURS_SEND
    heartbeat: str = OURS_HEARTBEAT
    # Sent right after the handshake when the server sends nothing on connect; the first text
    # frame received marks the connection as ready (authenticated and subscribed).
    ready_probe: str | None = None
    dispatch_marker: str = "message.dispatch"
    # CHATSERVER_CHANNEL_LAYER for "ours": None = the production default, "baseline" = --layer.
    layer: str | None = None
    notes: list = field(default_factory=list)
    # The git revision of the code it runs, when not the tree's (daemon@REV).
    revision: str | None = None

    def argv(self, sock, ctx):
        raise NotImplementedError

    def env(self, ctx):
        return ctx.ours_env(ctx.layer if self.layer == "baseline" else self.layer)

    def cwd(self, ctx):
        return str(REPO)

    def path_for(self, user_index, ctx):
        return f"/messaging/?token={ctx.setup_for(self.flavor)['tokens'][user_index]}"

    def room_json(self, room_id):
        return json.dumps(room_id)


class Daemon(Server):
    def argv(self, sock, ctx):
        return [
            str(VENV_BIN / "twistd"), "-n", "--pidfile", "", "-l", "-",
            "chat", "--socket", sock, "--settings", "bench.settings_bench",
            "--state-dir", str(ctx.state_dir), "--no-migrate",
        ]  # fmt: skip


class BareDaemon(Daemon):
    """The daemon with some features switched off (bench/settings_bench.py): their cost."""

    without = "ratelimit,presence"

    def env(self, ctx):
        return {**super().env(ctx), "CHATBENCH_WITHOUT": self.without}


class DaemonAt(Daemon):
    """The daemon on another revision's chatserver package (bench/run.py --against): a
    before/after in one run, on the same machine, database and load client."""

    def __init__(self, source, revision):
        super().__init__(
            f"daemon@{revision}", f"(a) daemon at {revision}", "ours", revision=revision
        )
        self.source = source

    def env(self, ctx):
        env = super().env(ctx)
        env["PYTHONPATH"] = f"{self.source}:{env['PYTHONPATH']}"  # ahead of the tree's code
        return env


class PlainDaphne(Server):
    def argv(self, sock, ctx):
        # -v 0: no access log line per connection (the daemon writes none either).
        return [str(VENV_BIN / "daphne"), "-v", "0", "-u", sock, "chatserver.asgi:application"]


class Uvicorn(Server):
    def argv(self, sock, ctx):
        return [
            str(VENV_BIN / "uvicorn"), "--uds", sock, "--lifespan", "off",
            "--log-level", "warning", "--no-access-log", "chatserver.asgi:application",
        ]  # fmt: skip


class Reference(Server):
    def argv(self, sock, ctx):
        return [
            str(REF_VENV / "bin" / "daphne"), "-v", "0", "-u", sock, "refbench.asgi:application",
        ]  # fmt: skip

    def env(self, ctx):
        return ctx.ref_env()

    def cwd(self, ctx):
        return str(REF_PROJECT)


class Ceiling(Server):
    def argv(self, sock, ctx):
        return [str(VENV_BIN / "python"), "-m", "bench.ceiling", "--socket", sock]

    def env(self, ctx):
        return ctx.base_env()

    def path_for(self, user_index, ctx):
        rooms = ",".join(str(r) for r in ctx.ceiling_rooms_of(user_index))
        return f"/?rooms={rooms}"


SERVERS = {
    "daemon": Daemon(
        "daemon",
        "(a) chatserver daemon (twistd)",
        "ours",
    ),
    "daemon-bare": BareDaemon("daemon-bare", "(a'') daemon, rate limiter and presence off", "ours"),
    "daemon-core": Daemon("daemon-core", "(a') daemon, core layer", "ours", layer="core"),
    "daphne": PlainDaphne("daphne", "(b) same app, plain daphne", "ours", layer="baseline"),
    "uvicorn": Uvicorn("uvicorn", "(c) same app, uvicorn", "ours", layer="baseline"),
    "reference": Reference(
        "reference",
        "(d) django-realtime-chat-messaging, daphne",
        "ref",
        send_template=REF_SEND,
        heartbeat=REF_HEARTBEAT,
    ),
    "ceiling": Ceiling(
        "ceiling",
        "(e) bare Autobahn broadcast (ceiling)",
        "ceiling",
        needs_postgres=False,
        needs_redis=False,
    ),
}
BASELINE = "daphne"
ORDER = ["daemon", "daemon-core", "daphne", "uvicorn", "reference", "ceiling"]
