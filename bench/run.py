"""Run the benchmark: every server, every scenario, side by side, bounded in time.

    .venv/bin/python -m bench.run --out bench/results/$(date +%Y%m%d-%H%M%S)
    .venv/bin/python -m bench.run --smoke --out /tmp/bench-smoke        # a few seconds

Starts Redis and a throwaway PostgreSQL cluster on Unix sockets in a temp dir, then for each server:
start it on a Unix socket, create users/rooms through its ORM, drive it with the load client
(``bench.client``, a few worker processes), stop it by PID. Writes ``results.json``,
``results.md`` and ``chart.png`` into ``--out``; ratios are to the baseline (b) of the same run,
medians of the repetitions. A phase that fails or times out records an error and the run goes on.
"""

import argparse
import json
import multiprocessing
import os
import platform
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import client, report
from .infra import Postgres, Redis
from .proc import (
    Managed,
    cpu_seconds,
    cpu_share,
    host_cpu_shares,
    host_cpu_ticks,
    raise_nofile,
    rss_kib,
    wait_for_unix_socket,
)
from .servers import BASELINE, ORDER, REF_PROJECT, REF_VENV, REPO, SERVERS, VENV_BIN, DaemonAt

# py-spy samples this many seconds of a reconnect storm (its first, when every client is back).
STORM_PROFILE_SECONDS = 10
CONNECT_PROFILE_SECONDS = 4  # the first seconds of a connect storm of a few thousand


class BenchError(Exception):
    """A phase failed; recorded in the results instead of stopping the run."""


@dataclass
class Params:
    reps: int = 1  # repetitions of each scenario per round
    # Rounds run every server again in turn: each server's repetitions are spread over the
    # whole run, so a noisy stretch of a shared machine does not fall on one server alone.
    rounds: int = 3
    workers: int = 2
    storm_conns: int = 1000
    storm_concurrency: int = 48
    fanout_sizes: list = field(default_factory=lambda: [100, 1000])
    fanout_senders: list = field(default_factory=lambda: [1, 10])
    window: int = 4
    latency_room: int = 1000
    latency_rate: float = 10.0
    latency_senders: int = 10
    latency_duration: float = 10.0
    pair_users: int = 1000
    # Open-loop small rooms: the pair_users // 2 one-to-one rooms and these five-member groups,
    # every member a sender; rates (messages/s over all senders) are stepped up until p99 of
    # send → last member's receipt exceeds small_p99_ms or a message is lost.
    small_groups: int = 200
    small_group_size: int = 5
    small_rates: list = field(
        default_factory=lambda: [250, 500, 1000, 1500, 2000, 3000, 4000, 5000, 6000, 8000, 10000]
    )
    small_step_seconds: float = 5.0
    # A production daemon's sockets are long-lived: before the measured steps, the members
    # send at the first rate for at least this long and until each has sent once (its access
    # to the room loaded, as after any first message), recorded in the steps as a warm-up and
    # never deciding the result.
    small_warmup_seconds: float = 5.0
    small_p99_ms: float = 100.0
    # Reconnect storm: clients in storm_rooms_each rooms of storm_room_size, all dropped at once,
    # back with a jittered wait (0..storm_jitter s) and session.resume.
    storm_clients: int = 10000
    storm_rooms_each: int = 5
    storm_room_size: int = 20
    storm_backlog: int = 3
    storm_jitter: float = 1.0
    storm_timeout: float = 300.0
    idle_counts: list = field(default_factory=lambda: [10000, 50000])
    idle_duration: float = 300.0
    # Sockets per load-client process in the idle phase (more processes for more sockets).
    idle_per_worker: int = 12000
    heartbeat_interval: float = 20.0
    duration: float = 5.0
    drain: float = 10.0
    quiet: float = 1.0
    # A sender whose window stays full this long gives its oldest message up (lost) and goes on.
    stall: float = 10.0
    connect_timeout: float = 30.0
    server_start_timeout: float = 90.0
    max_minutes: float = 150.0

    @classmethod
    def smoke(cls):
        return cls(
            reps=1,
            rounds=1,
            workers=1,
            storm_conns=10,
            storm_concurrency=5,
            fanout_sizes=[5],
            fanout_senders=[1, 2],
            window=2,
            latency_room=5,
            latency_rate=10.0,
            latency_senders=2,
            latency_duration=0.5,
            pair_users=4,
            small_groups=2,
            small_rates=[20, 40],
            small_step_seconds=0.5,
            small_warmup_seconds=0.5,
            storm_clients=10,
            storm_room_size=5,
            storm_backlog=2,
            storm_jitter=0.2,
            storm_timeout=30.0,
            idle_counts=[6],
            idle_per_worker=4,  # two client processes hold the idle sockets, as at 50,000
            idle_duration=0.5,
            heartbeat_interval=0.25,
            duration=0.5,
            # Waits only while receipts are missing: generous, so a loaded machine loses nothing.
            drain=10.0,
            quiet=0.2,
            connect_timeout=10.0,
            server_start_timeout=60.0,
            max_minutes=3.0,
        )


# -- run context: infrastructure, environments, setup data -----------------------------------


class Context:
    def __init__(self, params, workdir, smoke, layer, database_note):
        self.params = params
        self.workdir = Path(workdir)
        self.smoke = smoke
        self.layer = layer
        self.state_dir = self.workdir / "state"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.secret_key = "bench-" + secrets.token_urlsafe(48)
        self.redis = None
        self.postgres = None
        self.database_note = database_note
        self._setups = {}
        self.py_spy = None
        self.round = 1  # the round being run (Params.rounds)
        self.gc_diag = False
        self.snapshot = None
        self.snapshot_revision = None
        self.profile_scenarios = ()
        self.scenarios = ()  # name prefixes to run (--scenarios); empty: all
        self.out = None
        sizes = sorted(params.fanout_sizes + [params.latency_room])
        self.group_sizes = sorted(set(sizes))
        self.pair_first = max(self.group_sizes)
        self.small_first = self.pair_first + params.pair_users
        self.storm_first = self.small_first + params.small_groups * params.small_group_size
        self.n_users = max(self.storm_first + params.storm_clients, max(params.idle_counts or [0]))

    def base_env(self):
        env = {
            key: value
            for key, value in os.environ.items()
            if key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER")
        }
        # With a snapshot, chatserver is imported from the exported commit, ahead of the tree.
        env["PYTHONPATH"] = f"{self.snapshot}:{REPO}" if self.snapshot else str(REPO)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def ours_env(self, layer=None):
        """Environment of a/b/c; ``layer`` sets CHATSERVER_CHANNEL_LAYER (None: production's)."""
        env = self.base_env()
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "bench.settings_bench",
                "SECRET_KEY": self.secret_key,
                "ALLOWED_HOSTS": "localhost,127.0.0.1",
                "CHATSERVER_STATE_DIR": str(self.state_dir),
                "CHATSERVER_ACCESS_TOKEN_LIFETIME": str(6 * 3600),
                "CHATSERVER_LOG_LEVEL": "WARNING",
                # Fan-out phases keep connections silent for minutes; the idle phase heartbeats.
                "CHATSERVER_INACTIVITY_THRESHOLD": "900",
            }
        )
        if layer:
            env["CHATSERVER_CHANNEL_LAYER"] = layer
        if self.redis:
            env["REDIS_URL"] = self.redis.url
        if self.postgres:
            env["DATABASE_URL"] = self.postgres.url("chatbench")
        if self.gc_diag:
            env["PYTHONPATH"] = f"{REPO / 'bench' / 'diag'}:{env['PYTHONPATH']}"
            env["CHATBENCH_GC_LOG"] = str(self.out / "gc-{server}.json")
        return env

    def ref_env(self):
        env = self.base_env()
        env["PYTHONPATH"] = str(REF_PROJECT)
        env["DJANGO_SETTINGS_MODULE"] = "refbench.settings"
        env["SECRET_KEY"] = self.secret_key
        env["REDIS_URL"] = self.redis.url if self.redis else ""
        if self.postgres:
            env["REF_PG_HOST"] = str(self.postgres.sockdir)
            env["REF_PG_DB"] = "refbench"
        else:
            env["REF_SQLITE"] = str(self.state_dir / "ref.sqlite3")
        return env

    def plan(self):
        return {
            "users": self.n_users,
            "groups": self.group_sizes,
            "pairs": [self.pair_first, self.params.pair_users // 2],
            "small_groups": [
                self.small_first, self.params.small_groups, self.params.small_group_size,
            ],
            "storm": [
                self.storm_first, self.params.storm_clients, self.params.storm_room_size,
                self.params.storm_rooms_each, self.params.storm_backlog,
            ],
        }  # fmt: skip

    def setup_for(self, flavor):
        """Users, rooms and tokens for a server flavour, created once per run (shared DB)."""
        if flavor in self._setups:
            return self._setups[flavor]
        plan = self.plan()
        if flavor == "ceiling":
            data = {
                "tokens": [""] * self.n_users,
                "groups": list(range(1, len(self.group_sizes) + 1)),
                "pairs": [100000 + j for j in range(plan["pairs"][1])],
                "seconds": 0,
            }
        else:
            plan_path = self.workdir / f"plan-{flavor}.json"
            out_path = self.workdir / f"setup-{flavor}.json"
            plan_path.write_text(json.dumps(plan))
            if flavor == "ours":
                argv = [str(VENV_BIN / "python"), "-m", "bench.setup_ours"]
                env, cwd = self.ours_env(), str(REPO)
                env.pop("CHATBENCH_GC_LOG", None)
            else:
                argv = [str(REF_VENV / "bin" / "python"), str(REF_PROJECT / "setup_ref.py")]
                env, cwd = self.ref_env(), str(REF_PROJECT)
            result = subprocess.run(
                argv + [str(plan_path), str(out_path)],
                env=env,
                cwd=cwd,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if result.returncode != 0:
                raise BenchError(f"setup for {flavor} failed: {result.stderr.strip()[-1500:]}")
            data = json.loads(out_path.read_text())
        self._setups[flavor] = data
        return data

    def room_of_group(self, flavor, size):
        return self.setup_for(flavor)["groups"][self.group_sizes.index(size)]

    def pair_room(self, flavor, user_index):
        return self.setup_for(flavor)["pairs"][(user_index - self.pair_first) // 2]

    def ceiling_rooms_of(self, user_index):
        rooms = [k + 1 for k, size in enumerate(self.group_sizes) if user_index < size]
        first, count = self.pair_first, self.params.pair_users // 2
        if first <= user_index < first + 2 * count:
            rooms.append(100000 + (user_index - first) // 2)
        return rooms


# -- load-client worker processes --------------------------------------------------------------


class Pool:
    """A few ``bench.client`` worker processes (spawned), each driven over a pipe."""

    def __init__(self, count, sock):
        ctx = multiprocessing.get_context("spawn")
        self.pipes = []
        self.procs = []
        for worker_id in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=client.worker_main, args=(child, sock, worker_id), daemon=True
            )
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def __len__(self):
        return len(self.pipes)

    def call(self, commands, timeout):
        """Send one command per worker, wait for every answer at most ``timeout`` seconds."""
        for pipe, command in zip(self.pipes, commands, strict=True):
            pipe.send({**command, "timeout_s": timeout})
        deadline = time.monotonic() + timeout + 10
        results = []
        for pipe in self.pipes:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not pipe.poll(remaining):
                self.kill()
                raise BenchError(f"load client did not answer {commands[0]['cmd']!r} in time")
            results.append(pipe.recv())
        errors = [r["error"] for r in results if "error" in r]
        if errors:
            raise BenchError("; ".join(errors))
        return results

    def broadcast(self, command, timeout):
        return self.call([dict(command) for _ in self.pipes], timeout)

    def close(self):
        try:
            for pipe in self.pipes:
                pipe.send({"cmd": "exit"})
            for pipe in self.pipes:
                if pipe.poll(5):
                    pipe.recv()
        except (OSError, EOFError, BrokenPipeError):
            pass
        self.kill()

    def kill(self):
        for proc in self.procs:
            proc.join(timeout=2)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=2)


# -- scenarios ---------------------------------------------------------------------------------


def settle(pid, max_wait=10.0, idle_fraction=0.1):
    """Wait until the server uses less than ``idle_fraction`` of a core (at most ``max_wait``)."""
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(0.25)
        after = cpu_seconds(pid)
        if before is None or after is None or (after - before) / 0.25 < idle_fraction:
            return


def split(items, count):
    return [items[i::count] for i in range(count)]


def percentiles(hist):
    return {
        "p50_ms": client.hist_percentile(hist, 0.50),
        "p90_ms": client.hist_percentile(hist, 0.90),
        "p99_ms": client.hist_percentile(hist, 0.99),
        "max_ms": client.hist_percentile(hist, 1.0),
    }


class Runner:
    def __init__(self, server, ctx, sock, process, pool):
        self.server = server
        self.ctx = ctx
        self.p = ctx.params
        self.sock = sock
        self.process = process
        self.pool = pool
        self.pid = process.pid
        self.rep_counter = 0

    def next_rep(self):
        """A fresh id per measured repetition: late frames of an earlier one are not counted."""
        self.rep_counter += 1
        return self.rep_counter

    def targets(self, user_indices, senders=None):
        senders = senders or {}
        return [
            [i, self.server.path_for(user, self.ctx), senders.get(i)]
            for i, user in enumerate(user_indices)
        ]

    def connect(self, user_indices, senders=None, concurrency=None, pool=None):
        pool = pool or self.pool
        return self.connect_parts(
            split(self.targets(user_indices, senders), len(pool)), concurrency, pool
        )

    def connect_parts(self, targets, concurrency=None, pool=None):
        """Connect each worker's own ``[index, path, sender_id]`` targets."""
        pool = pool or self.pool
        concurrency = concurrency or self.p.storm_concurrency
        per_worker = max(1, concurrency // len(pool))
        timeout = self.p.connect_timeout + sum(len(part) for part in targets) / 5.0
        results = pool.call(
            [
                {
                    "cmd": "connect",
                    "targets": part,
                    "concurrency": per_worker,
                    "timeout": self.p.connect_timeout,
                    "ready_probe": self.server.ready_probe,
                }
                for part in targets
            ],
            timeout=timeout,
        )
        hist = {}
        for r in results:
            client.hist_merge(hist, r["hist"])
        ok = sum(r["ok"] for r in results)
        failed = sum(r["failed"] for r in results)
        wall = max(r["finished"] for r in results) - min(r["started"] for r in results)
        errors = {}
        for r in results:
            errors.update(r["errors"])
        return {
            "ok": ok,
            "failed": failed,
            "retries": sum(r["retries"] for r in results),
            "seconds": round(wall, 3),
            "connects_per_s": round(ok / wall, 1) if wall > 0 else None,
            "errors": errors,
            **{f"connect_{k}": v for k, v in percentiles(hist).items()},
        }

    def close_all(self, pool=None):
        (pool or self.pool).broadcast({"cmd": "close"}, timeout=60)
        settle(self.pid, max_wait=15)

    def client_cpu(self):
        """CPU seconds the load-client processes have used so far (None if one is gone)."""
        seconds = [cpu_seconds(proc.pid) for proc in self.pool.procs]
        return None if None in seconds else sum(seconds)

    def check_alive(self):
        if not self.process.alive():
            raise BenchError(f"server exited: {self.process.log_tail(8)}")

    # connect storm: handshake + auth + subscribe, until the first server frame
    def connect_storm(self):
        users = [(self.ctx.pair_first + k) % self.ctx.n_users for k in range(self.p.storm_conns)]
        reps = []
        for _ in range(self.p.reps):
            self.check_alive()
            settle(self.pid)
            profiler = None
            if not reps:  # py-spy samples the first repetition
                profiler = self.start_profile("connect_storm", CONNECT_PROFILE_SECONDS)
            cpu0 = cpu_seconds(self.pid)
            result = self.connect(users)
            cpu1 = cpu_seconds(self.pid)
            finish_profile(profiler, CONNECT_PROFILE_SECONDS)
            if cpu0 is not None and cpu1 is not None and result["seconds"]:
                result["server_cpu"] = round((cpu1 - cpu0) / result["seconds"], 2)
            reps.append(result)
            self.close_all()
        return reps

    def fan_out(self, size, sender_counts, label_prefix, extra_rate=None):
        """Rooms of ``size`` members: one connected set, several sender configurations."""
        flavor = self.server.flavor
        room = self.server.room_json(self.ctx.room_of_group(flavor, size))
        users = list(range(size))
        configs = [(f"{label_prefix}_{size}x{s}", s, "window", None) for s in sender_counts]
        if extra_rate:
            s, rate = extra_rate
            configs.append((f"latency_{size}_at_{rate:g}per_s", s, "rate", rate))
        out = {}
        sender_ids = {}
        for _, s, _, _ in configs:
            for k in range(s):
                sender_ids[round(k * size / s)] = round(k * size / s)
        settle(self.pid)
        try:
            conn = self.connect(users, senders=sender_ids)
            if conn["failed"]:
                raise BenchError(f"{conn['failed']} of {size} members failed to connect")
            for name, s, mode, rate in configs:
                senders = [(round(k * size / s), room, round(k * size / s)) for k in range(s)]
                try:
                    out[name] = self.reps_of(
                        users, senders, size, mode=mode, rate=rate, connect=conn, name=name
                    )
                except BenchError as error:
                    out[name] = {"error": str(error)}
        finally:
            self.close_all()
        return out

    def small_rooms(self):
        first = self.ctx.pair_first
        count = (self.p.pair_users // 2) * 2
        users = [first + k for k in range(count)]
        flavor = self.server.flavor
        senders = [
            (k, self.server.room_json(self.ctx.pair_room(flavor, users[k])), k)
            for k in range(count)
        ]
        settle(self.pid)
        try:
            conn = self.connect(users, senders={k: k for k in range(count)})
            if conn["failed"]:
                raise BenchError(f"{conn['failed']} of {count} users failed to connect")
            return self.reps_of(
                users, senders, 2, mode="window", window=1, connect=conn, name="small_rooms_1to1"
            )
        finally:
            self.close_all()

    # open-loop small rooms: a fixed schedule of sends, latency to each message's last member
    def small_rooms_open(self):
        ctx, server = self.ctx, self.server
        setup = ctx.setup_for(server.flavor)
        first = ctx.pair_first
        rooms = [
            (room_id, [first + 2 * j, first + 2 * j + 1])
            for j, room_id in enumerate(setup["pairs"][: self.p.pair_users // 2])
        ]
        size = self.p.small_group_size
        for g, room_id in enumerate(setup["small_groups"]):
            rooms.append((room_id, [ctx.small_first + size * g + m for m in range(size)]))
        senders = sum(len(members) for _, members in rooms)
        # Every member sends, in an order shuffled once: slot k sends at (k + n·senders) / rate.
        slots = list(range(senders))
        random.Random(16).shuffle(slots)
        # A room's members share a worker, so it sees every receipt of the room's messages.
        parts = [[] for _ in self.pool.pipes]
        sender_parts = [[] for _ in self.pool.pipes]
        index = 0
        for r, (room_id, members) in enumerate(rooms):
            w = r % len(parts)
            room = server.room_json(room_id)
            for user in members:
                parts[w].append([index, server.path_for(user, ctx), index])
                sender_parts[w].append([index, room, index, slots[index], len(members)])
                index += 1
        settle(self.pid)
        try:
            conn = self.connect_parts(parts)
            if conn["failed"]:
                raise BenchError(f"{conn['failed']} of {senders} users failed to connect")
            steps, best = [], 0
            if self.p.small_warmup_seconds > 0:
                rate = self.p.small_rates[0]
                seconds = max(self.p.small_warmup_seconds, senders / rate)
                warmup = self.open_loop_step(sender_parts, rate, senders, seconds)
                steps.append({**warmup, "warmup": True})
                print(f"    warm-up at {warmup['rate']}/s: p99 {warmup['p99_ms']} ms",
                      file=sys.stderr, flush=True)  # fmt: skip
            for rate in self.p.small_rates:
                step = self.open_loop_step(sender_parts, rate, senders)
                steps.append(step)
                print(f"    {rate}/s: p99 {step['p99_ms']} ms, lost {step['lost']}",
                      file=sys.stderr, flush=True)  # fmt: skip
                if not step["ok"]:
                    break
                best = rate
            rep = {"max_rate": best, "steps": steps}
            return {
                "reps": [rep],
                "median": medians([rep]),
                "rooms": {"one_to_one": self.p.pair_users // 2, "groups": len(rooms)},
                "senders": senders,
                "connect": conn,
            }
        finally:
            self.close_all()

    def open_loop_step(self, sender_parts, rate, slots, duration=None):
        self.check_alive()
        settle(self.pid, max_wait=10)
        duration = duration or self.p.small_step_seconds
        t_start = time.monotonic() + 0.3
        rep_id = self.next_rep()
        clients0, host0 = self.client_cpu(), host_cpu_ticks()
        cpu0, wall0 = cpu_seconds(self.pid), time.monotonic()
        started_at = time.time()
        results = self.pool.call(
            [
                {
                    "cmd": "open_loop",
                    "senders": part,
                    "rep": rep_id,
                    "t_start": t_start,
                    "rate": rate,
                    "slots": slots,
                    "duration": duration,
                    "drain": self.p.drain,
                    "frame_template": self.server.send_template,
                    "dispatch_marker": self.server.dispatch_marker,
                }
                for part in sender_parts
            ],
            timeout=duration + self.p.drain + 30,
        )
        cpu1, wall1 = cpu_seconds(self.pid), time.monotonic()
        clients1, host1 = self.client_cpu(), host_cpu_ticks()
        hist, lag = {}, {}
        for r in results:
            client.hist_merge(hist, r["hist"])
            client.hist_merge(lag, r["lag_hist"])
        sent = sum(r["sent"] for r in results)
        lost = sum(r["lost"] + r["unsent"] for r in results)
        step = {
            "rate": rate,
            # Wall-clock bounds of the step (time.time()), to match --gc-diag's collections.
            "started_at": round(started_at, 3),
            "ended_at": round(time.time(), 3),
            "sent": sent,
            "sent_per_s": round(sent / duration, 1),
            "completed": sum(r["completed"] for r in results),
            "lost": lost,
            "unexpected": sum(r["unexpected"] for r in results),
            **percentiles(hist),
            # How late the client itself sent (its schedule is fixed): a loaded client shows here.
            "send_lag_p99_ms": client.hist_percentile(lag, 0.99),
            "server_cpu": cpu_share(cpu0, cpu1, wall1 - wall0),
            "client_cpu": cpu_share(clients0, clients1, wall1 - wall0),
            **host_cpu_shares(host0, host1),
            "other_samples": [x for r in results for x in r["other_samples"]][:3],
        }
        step["ok"] = bool(
            sent
            and lost == 0
            and step["p99_ms"] is not None
            and step["p99_ms"] <= self.p.small_p99_ms
        )
        return step

    # reconnect storm: every socket dropped at once, every client back and resumed
    def reconnect_storm(self):
        ctx, server = self.ctx, self.server
        setup = ctx.setup_for(server.flavor)
        count = self.p.storm_clients
        users = [ctx.storm_first + k for k in range(count)]
        cursors = setup["storm_cursors"]
        frames = [
            json.dumps(
                {
                    "event_type": "session.resume",
                    "data": {"rooms": {str(r): cursors[str(r)] for r in setup["storm_rooms"][k]}},
                    "request_id": "storm-resume",
                },
                separators=(",", ":"),
            )
            for k in range(count)
        ]
        clients = [[i, server.path_for(user, ctx), frames[i]] for i, user in enumerate(users)]
        self.check_alive()
        settle(self.pid, max_wait=15)
        try:
            conn = self.connect(users)
            if conn["failed"]:
                raise BenchError(f"{conn['failed']} of {count} clients failed to connect")
            settle(self.pid, max_wait=15)
            # py-spy samples the storm's first seconds, when every client is coming back.
            profiler = self.start_profile(f"reconnect_storm_{count}", STORM_PROFILE_SECONDS)
            cpu0, wall0 = cpu_seconds(self.pid), time.monotonic()
            results = self.pool.call(
                [
                    {
                        "cmd": "storm",
                        "clients": part,
                        "jitter": self.p.storm_jitter,
                        "timeout": self.p.storm_timeout,
                    }
                    for part in split(clients, len(self.pool))
                ],
                timeout=self.p.storm_timeout + 30,
            )
            cpu1, wall1 = cpu_seconds(self.pid), time.monotonic()
            finish_profile(profiler, STORM_PROFILE_SECONDS)
        finally:
            self.close_all()
        hist, errors, failed_attempts = {}, {}, Counter()
        for r in results:
            client.hist_merge(hist, r["hist"])
            errors.update(r["errors"])
            failed_attempts.update(r["failed_attempts"])
        caught_up = sum(r["ok"] for r in results)
        dropped = min(r["dropped_at"] for r in results)
        last = max((r["last_done"] for r in results if r["last_done"]), default=None)
        all_back = caught_up == count
        catch_up_s = round(last - dropped, 3) if all_back and last else None
        result = {
            "clients": count,
            "rooms_each": self.p.storm_rooms_each,
            "jitter_s": self.p.storm_jitter,
            "caught_up": caught_up,
            "failed": count - caught_up,
            "refused": sum(r["refused"] for r in results),
            "has_more": sum(r["has_more"] for r in results),
            "attempts": sum(r["attempts"] for r in results),
            # From the drop until the last client had its session.resume answer.
            "catch_up_s": catch_up_s,
            "resumes_per_s": round(count / catch_up_s, 1) if catch_up_s else None,
            # One client: from its first reconnect attempt to its resume answer.
            **{f"client_catch_up_{k}": v for k, v in percentiles(hist).items()},
            "server_cpu": cpu_share(cpu0, cpu1, wall1 - wall0),
            "errors": errors,
            "failed_attempts": dict(failed_attempts),  # why attempts failed (retried or not)
            "connect": conn,
        }
        return {"reps": [result], "median": medians([result])}

    def start_profile(self, name, seconds):  # ended by finish_profile
        """py-spy (``--py-spy``) samples the server during the first repetition of ``name``."""
        ctx = self.ctx
        if not ctx.py_spy or name not in ctx.profile_scenarios or ctx.round > 1:
            return None
        path = ctx.out / f"profile-{self.server.key}-{name}.txt"
        argv = [
            ctx.py_spy, "record", "--pid", str(self.pid), "--duration", str(int(seconds)),
            "--rate", "200", "--format", "raw", "--nonblocking", "--output", str(path),
        ]  # fmt: skip
        return Managed("py-spy", argv, log_path=ctx.out / "py-spy.log")

    def reps_of(
        self, users, senders, room_size, *, mode, rate=None, window=None, connect=None, name=""
    ):
        by_worker = split(list(range(len(users))), len(self.pool))
        worker_of = {i: w for w, indices in enumerate(by_worker) for i in indices}
        # Member i of ``users`` is the i-th target overall; workers hold targets i::W, and a
        # worker's connection keeps the overall index it was given.
        # A sender's window slot frees when every member connection held by the sender's worker
        # has received the message: the backlog inside the server stays bounded.
        room_of = {}
        for member_index, room, _ in senders:
            room_of[member_index] = room
        sender_lists = [[] for _ in self.pool.pipes]
        for member_index, room, sender_id in senders:
            w = worker_of[member_index]
            if room_size == 2:
                local = sum(1 for i in (member_index, member_index ^ 1) if worker_of.get(i) == w)
            else:
                local = len(by_worker[w])
            sender_lists[w].append([member_index, room, sender_id, local])
        duration = self.p.latency_duration if mode == "rate" else self.p.duration
        per_sender_rate = (rate / max(1, len(senders))) if rate else None
        reps = []
        for _ in range(self.p.reps):
            self.check_alive()
            settle(self.pid, max_wait=5)
            t_start = time.monotonic() + 0.3
            rep_id = self.next_rep()
            profiler = self.start_profile(name, duration) if not reps else None
            clients0, host0 = self.client_cpu(), host_cpu_ticks()
            cpu0, wall0 = cpu_seconds(self.pid), time.monotonic()
            results = self.pool.call(
                [
                    {
                        "cmd": "run",
                        "senders": part,
                        "rep": rep_id,
                        "t_start": t_start,
                        "duration": duration,
                        "drain": self.p.drain,
                        "quiet": self.p.quiet,
                        "mode": mode,
                        "window": window or self.p.window,
                        "stall": self.p.stall,
                        "rate": per_sender_rate,
                        "frame_template": self.server.send_template,
                        "dispatch_marker": self.server.dispatch_marker,
                    }
                    for part in sender_lists
                ],
                timeout=duration + self.p.drain + 30,
            )
            cpu1, wall1 = cpu_seconds(self.pid), time.monotonic()
            clients1, host1 = self.client_cpu(), host_cpu_ticks()
            finish_profile(profiler, duration)
            hist = {}
            for r in results:
                client.hist_merge(hist, r["hist"])
            sent = sum(r["sent"] for r in results)
            received = sum(r["received"] for r in results)
            last = max(r["last_recv"] for r in results)
            span = (last - t_start) if last > t_start else None
            expected = sent * room_size
            reps.append(
                {
                    "sent": sent,
                    "received": received,
                    "expected": expected,
                    "delivered_ratio": round(received / expected, 4) if expected else None,
                    "seconds": round(span, 3) if span else None,
                    "deliveries_per_s": round(received / span, 1) if span else 0.0,
                    "messages_per_s": round(sent / span, 1) if span else 0.0,
                    "stalls": sum(r["stalls"] for r in results),
                    "open_after": sum(r["open"] for r in results),
                    "server_cpu": cpu_share(cpu0, cpu1, wall1 - wall0),
                    # Where the CPUs went: the load clients share them with the server.
                    "client_cpu": cpu_share(clients0, clients1, wall1 - wall0),
                    **host_cpu_shares(host0, host1),
                    **percentiles(hist),
                    "other_samples": [x for r in results for x in r["other_samples"]][:3],
                }
            )
        return {"reps": reps, "median": medians(reps), "connect": connect}

    def idle(self, count):
        users = [k % self.ctx.n_users for k in range(count)]
        self.check_alive()
        limit = open_files_limit(self.pid)
        if limit is not None and limit < count + 200:
            raise BenchError(
                f"the server may open {limit} files (RLIMIT_NOFILE), fewer than {count} sockets: "
                "raise the hard limit (ulimit -Hn) of the shell that runs the bench"
            )
        # Enough load-client processes that none holds more than idle_per_worker sockets.
        extra = None
        workers = -(-count // self.p.idle_per_worker)
        if workers > len(self.pool):
            extra = Pool(workers, self.sock)
        pool = extra or self.pool
        settle(self.pid, max_wait=15)
        before = rss_kib(self.pid)
        try:
            return self._idle(users, count, before, pool)
        finally:
            self.close_all(pool)
            if extra is not None:
                extra.close()

    def _idle(self, users, count, before, pool):
        conn = self.connect(users, pool=pool)
        hb = pool.broadcast(
            {
                "cmd": "heartbeat",
                "frame": self.server.heartbeat,
                "interval": self.p.heartbeat_interval,
                "duration": self.p.idle_duration,
            },
            timeout=self.p.idle_duration + 60,
        )
        settle(self.pid, max_wait=10)
        after = rss_kib(self.pid)
        stats = pool.broadcast({"cmd": "stats"}, timeout=30)
        open_now = sum(s["open"] for s in stats)
        close_codes = {}
        for s in stats:
            for code, n in s["close_codes"].items():
                close_codes[code] = close_codes.get(code, 0) + n
        result = {
            "connections": count,
            "connected": conn["ok"],
            "open_after": open_now,
            "connect_failed": conn["failed"],
            "lost": sum(s["lost"] for s in stats),
            "close_codes": close_codes,
            "heartbeats_sent": sum(h["sent"] for h in hb),
            "frames_received": sum(h["frames"] for h in hb),
            "rss_before_kib": before,
            "rss_after_kib": after,
            "kib_per_conn": (
                round((after - before) / open_now, 2) if before and after and open_now else None
            ),
            "load_client_processes": len(pool),
            "connect": conn,
        }
        result["errors"] = result["connect_failed"] + result["lost"]
        return result


def open_files_limit(pid):
    """The soft RLIMIT_NOFILE of process ``pid`` (None if unknown)."""
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
    except (OSError, ValueError, IndexError):
        return None
    return None


def medians(reps):
    keys = []
    for rep in reps:
        for k, v in rep.items():
            if isinstance(v, int | float) and not isinstance(v, bool) and k not in keys:
                keys.append(k)
    out = {}
    for key in keys:
        values = [r[key] for r in reps if isinstance(r.get(key), int | float)]
        if values:
            out[key] = round(statistics.median(values), 3)
    return out


# -- one server --------------------------------------------------------------------------------


def finish_profile(profiler, seconds):
    """Let py-spy (start_profile) end its ``seconds`` of sampling and write them: a SIGTERM
    before then loses every sample. Stopped if it has not ended 20 s after."""
    if profiler is None:
        return
    try:
        profiler.popen.wait(seconds + 20)
    except subprocess.TimeoutExpired:
        profiler.stop()


def run_server(server, ctx, deadline, log_dir):
    """Start ``server``, run every scenario of this round on it, stop it; its record."""
    p = ctx.params
    suffix = f"-round{ctx.round}" if ctx.round > 1 else ""
    # The tree may change between servers (others commit while a long run goes on): record it.
    revision = server.revision or (ctx.snapshot_revision if ctx.snapshot else git_revision())
    record = {"label": server.label, "scenarios": {}, "error": None, "git": revision}
    sock = str(ctx.workdir / f"{server.key}.sock")
    if server.flavor == "ref" and not (REF_VENV / "bin" / "daphne").exists():
        record["error"] = "reference venv missing: run with --make-ref-venv"
        return record
    if ctx.redis:
        ctx.redis.flush()
        if server.flavor == "ref":
            ctx._setups.pop("ref", None)  # its group lists live in the (flushed) cache
    try:
        setup = ctx.setup_for(server.flavor)
        record["setup_seconds"] = setup.get("seconds")
    except (BenchError, subprocess.TimeoutExpired) as error:
        record["error"] = f"setup: {error}"
        return record
    env = server.env(ctx)
    if "CHATBENCH_GC_LOG" in env:
        env["CHATBENCH_GC_LOG"] = env["CHATBENCH_GC_LOG"].replace("{server}", server.key + suffix)
    process = Managed(
        server.key,
        server.argv(sock, ctx),
        env=env,
        cwd=server.cwd(ctx),
        log_path=log_dir / f"{server.key}{suffix}.log",
    )
    pool = None
    try:
        if not wait_for_unix_socket(sock, p.server_start_timeout, process):
            record["error"] = f"server did not start: {process.log_tail(15)}"
            return record
        record["pid"] = process.pid
        pool = Pool(p.workers, sock)
        runner = Runner(server, ctx, sock, process, pool)
        warm = runner.connect([0, 1])
        runner.close_all()
        if warm["failed"]:
            record["error"] = f"warm-up connections failed: {warm['errors']}"
            return record
        record["rss_start_kib"] = rss_kib(process.pid)

        # Memory is read once, on a server that has run nothing else: in the first round.
        phases = []
        if ctx.round == 1:
            phases += [(f"idle_{n}", lambda n=n: runner.idle(n)) for n in p.idle_counts]
        phases.append(("connect_storm", runner.connect_storm))
        if server.flavor == "ours" and p.storm_clients:
            phases.append((f"reconnect_storm_{p.storm_clients}", runner.reconnect_storm))
        for size in sorted(set(p.fanout_sizes)):
            extra = None
            if size == p.latency_room:
                extra = (p.latency_senders, p.latency_rate)
            phases.append(
                (
                    f"fanout_{size}",
                    lambda s=size, e=extra: runner.fan_out(s, p.fanout_senders, "fanout", e),
                )
            )
        if p.latency_room not in p.fanout_sizes:
            phases.append(
                (
                    f"latency_{p.latency_room}",
                    lambda: runner.fan_out(
                        p.latency_room, [], "fanout", (p.latency_senders, p.latency_rate)
                    ),
                )
            )
        phases.append(("small_rooms_1to1", runner.small_rooms))
        if server.flavor == "ours" and p.small_rates:
            phases.append(("small_rooms_open", runner.small_rooms_open))

        if ctx.scenarios:
            phases = [(n, f) for n, f in phases if n.startswith(ctx.scenarios)]
        for name, phase in phases:
            if time.monotonic() > deadline:
                record["scenarios"][name] = {"error": "skipped: the run's time budget is spent"}
                continue
            began = time.monotonic()
            print(f"  {server.key}: {name} ...", file=sys.stderr, flush=True)
            try:
                result = phase()
            except BenchError as error:
                result = {"error": str(error)}
            except Exception as error:  # noqa: BLE001 - one failed phase must not stop the run
                result = {
                    "error": f"{type(error).__name__}: {error}",
                    "trace": traceback.format_exc()[-1500:],
                }
            if name.startswith("fanout_") and isinstance(result, dict) and "error" not in result:
                record["scenarios"].update(result)
            elif name == "connect_storm" and isinstance(result, list):
                record["scenarios"][name] = {"reps": result, "median": medians(result)}
            elif name == "small_rooms_1to1" and "error" not in result:
                record["scenarios"][name] = result
            else:
                record["scenarios"][name] = result
            print(
                f"  {server.key}: {name} done in {time.monotonic() - began:.1f}s",
                file=sys.stderr,
                flush=True,
            )
            if "error" in result and not process.alive():
                record["error"] = f"server died during {name}: {process.log_tail(10)}"
                break
            if pool is not None and not all(proc.is_alive() for proc in pool.procs):
                pool.kill()
                pool = Pool(p.workers, sock)
                runner.pool = pool
        record["rss_end_kib"] = rss_kib(process.pid)
    except BenchError as error:
        record["error"] = str(error)
    finally:
        if pool is not None:
            pool.close()
        record["exit_code"] = process.stop(timeout=20)
    return record


def merge_round(records, key, record, round_no):
    """Add one round's record of a server to its records so far: the repetitions of every
    repeated scenario are pooled (each marked with its round) and their medians recomputed."""
    for scenario in record["scenarios"].values():
        for rep in scenario.get("reps", ()) if isinstance(scenario, dict) else ():
            rep["round"] = round_no
    rounds = {k: record.get(k) for k in ("error", "pid", "git", "exit_code", "setup_seconds")}
    kept = records.get(key)
    if kept is None:
        record["rounds"] = [rounds]
        records[key] = record
        return
    kept["rounds"].append(rounds)
    if record.get("error") and not kept.get("error"):
        kept["error"] = f"round {round_no}: {record['error']}"
    for name, scenario in record["scenarios"].items():
        before = kept["scenarios"].get(name)
        if isinstance(before, dict) and "reps" in before:
            if isinstance(scenario, dict) and scenario.get("reps"):
                before["reps"].extend(scenario["reps"])
                before["median"] = medians(before["reps"])
            elif isinstance(scenario, dict) and "error" in scenario:
                failed = before.setdefault("round_errors", [])
                failed.append(f"round {round_no}: {scenario['error']}")
        else:  # nothing measured before (an error, or skipped): this round's result stands
            kept["scenarios"][name] = scenario


# -- the whole run -----------------------------------------------------------------------------


def machine_info():
    info = {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["mem_total_kib"] = int(line.split()[1])
                break
    except OSError:
        pass
    return info


def versions():
    out = {}
    for name in ("django", "channels", "channels_redis", "daphne", "twisted", "autobahn",
                 "uvicorn", "websockets", "redis"):  # fmt: skip
        try:
            from importlib.metadata import version

            out[name] = version(name)
        except Exception:  # noqa: BLE001
            out[name] = None
    return out


def git_revision():
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
            timeout=10,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "chatserver"],
            cwd=REPO, capture_output=True, text=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def export_snapshot(workdir, revision="HEAD", folder="src"):
    """``git archive REVISION chatserver`` into the workdir: every server of the run imports the
    same committed code even while others commit to the tree (HEAD), or an earlier version's
    code for a before/after in one run (--against). Returns (path, short revision)."""
    target = Path(workdir) / folder
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", revision, "chatserver"], cwd=REPO, capture_output=True, timeout=60
    )
    if archive.returncode != 0:
        raise BenchError(f"git archive failed: {archive.stderr.decode()[-300:]}")
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True, timeout=60)
    short = subprocess.run(
        ["git", "rev-parse", "--short", revision], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    return target, short


def make_ref_venv():
    """Create bench/.venv-ref with the reference package (never mixed into our venv)."""
    if (REF_VENV / "bin" / "daphne").exists():
        return
    subprocess.run([sys.executable, "-m", "venv", str(REF_VENV)], check=True, timeout=300)
    subprocess.run(
        [
            str(REF_VENV / "bin" / "pip"), "install", "-q",
            "django-realtime-chat-messaging", "psycopg[binary]", "PyJWT",
        ],
        check=True,
        timeout=900,
    )  # fmt: skip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", default=None, help="output directory (default bench/results/<stamp>)"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny numbers, no PostgreSQL/Redis")
    parser.add_argument(
        "--servers",
        default=None,
        help=f"comma-separated, of {','.join(SERVERS)} (default: {','.join(ORDER)})",
    )
    parser.add_argument(
        "--layer", default="core", choices=["core", "pubsub"], help="channel layer of (b) and (c)"
    )
    parser.add_argument(
        "--reps", type=int, help="repetitions of each scenario per round (median reported)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="run every server this many times in turn, pooling their repetitions",
    )
    parser.add_argument(
        "--idle-duration", type=float, help="seconds of heartbeats before RSS is read"
    )
    parser.add_argument("--idle-counts", help="comma-separated idle socket counts, e.g. 1000,5000")
    parser.add_argument("--duration", type=float, help="seconds of sending per repetition")
    parser.add_argument("--workers", type=int, help="load-client processes")
    parser.add_argument("--fanout-sizes", help="comma-separated room sizes, e.g. 100,1000")
    parser.add_argument("--storm-conns", type=int, help="connections per connect-storm repetition")
    parser.add_argument("--pair-users", type=int, help="users in 1:1 rooms")
    parser.add_argument("--small-groups", type=int, help="five-member groups (open loop)")
    parser.add_argument(
        "--small-rates", help="comma-separated open-loop rates (messages/s), stepped up in order"
    )
    parser.add_argument("--small-step-seconds", type=float, help="seconds of each open-loop step")
    parser.add_argument(
        "--small-warmup-seconds", type=float, help="unmeasured warm-up before the steps (0: none)"
    )
    parser.add_argument("--storm-clients", type=int, help="reconnect-storm clients (0: none)")
    parser.add_argument("--storm-jitter", type=float, help="reconnect wait 0..N s, per client")
    parser.add_argument(
        "--scenarios", help="comma-separated scenario name prefixes to run (default: all)"
    )
    parser.add_argument(
        "--unsafe-fast-db",
        action="store_true",
        help="PostgreSQL with fsync/synchronous_commit off: quick runs, never a published table",
    )
    parser.add_argument("--max-minutes", type=float, help="time budget; later phases are skipped")
    parser.add_argument("--py-spy", help="path to py-spy: profile the servers while they work")
    parser.add_argument(
        "--profile-scenarios",
        default="fanout_1000x10,small_rooms_1to1",
        help="scenarios whose first repetition py-spy samples (raw collapsed stacks in --out)",
    )
    parser.add_argument(
        "--gc-diag", action="store_true", help="log GC pauses of a/b/c (bench/diag) to --out"
    )
    parser.add_argument(
        "--snapshot",
        action="store_true",
        help="run a/b/c on `git archive HEAD chatserver` (pinned code while others commit)",
    )
    parser.add_argument(
        "--against",
        default="",
        help="comma-separated git revisions: each adds a server daemon@REV, the daemon on that "
        "revision's chatserver package (same database schema), taking turns with the others",
    )
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument(
        "--make-ref-venv", action="store_true", help="create bench/.venv-ref if missing"
    )
    args = parser.parse_args(argv)

    params = Params.smoke() if args.smoke else Params()
    for name in (
        "reps",
        "rounds",
        "idle_duration",
        "duration",
        "workers",
        "storm_conns",
        "pair_users",
        "max_minutes",
        "small_groups",
        "small_step_seconds",
        "small_warmup_seconds",
        "storm_clients",
        "storm_jitter",
    ):
        value = getattr(args, name)
        if value is not None:
            setattr(params, name, value)
    if args.idle_counts:
        params.idle_counts = [int(x) for x in args.idle_counts.split(",") if x]
    if args.small_rates:
        params.small_rates = [int(x) for x in args.small_rates.split(",") if x]
    if args.fanout_sizes:
        params.fanout_sizes = [int(x) for x in args.fanout_sizes.split(",") if x]
        if params.latency_room not in params.fanout_sizes:
            params.latency_room = max(params.fanout_sizes)
    if args.smoke:
        keys = ["daemon", "daphne", "ceiling"]
    else:
        keys = list(ORDER)
    if args.servers:
        keys = [k.strip() for k in args.servers.split(",") if k.strip()]
    unknown = [k for k in keys if k not in SERVERS]
    if unknown:
        parser.error(f"unknown servers: {unknown}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or REPO / "bench" / "results" / stamp)
    out.mkdir(parents=True, exist_ok=True)

    nofile = raise_nofile()
    started = time.monotonic()
    deadline = started + params.max_minutes * 60
    workdir = Path(tempfile.mkdtemp(prefix="chatbench-"))
    servers = dict(SERVERS)  # and the run's daemon@REV servers (--against)
    use_pg = not args.smoke and not args.sqlite and any(SERVERS[k].needs_postgres for k in keys)
    use_redis = not args.smoke and any(SERVERS[k].needs_redis for k in keys)
    results = {
        "meta": {
            "command": " ".join(
                [Path(sys.executable).name, "-m", "bench.run"] + (argv or sys.argv[1:])
            ),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "smoke": args.smoke,
            "machine": machine_info(),
            "versions": versions(),
            "params": asdict(params),
            "rlimit_nofile": nofile,
            "layer": "in-memory" if args.smoke else args.layer,
            "database": None,
            "postgres_fsync": None,
            "notes": [],
            "baseline": BASELINE,
            "git": git_revision(),
        },
        "servers": {},
    }
    ctx = None
    try:
        if args.make_ref_venv and "reference" in keys:
            make_ref_venv()
        redis = Redis(workdir) if use_redis else None
        postgres = None
        db_note = "sqlite (smoke)" if args.smoke else "sqlite"
        if use_pg:
            try:
                postgres = Postgres(
                    workdir, databases=("chatbench", "refbench"), durable=not args.unsafe_fast_db
                )
                db_note = "postgresql " + Path(postgres.bindir).parent.name
                results["meta"]["postgres_fsync"] = "off" if args.unsafe_fast_db else "on"
                if args.unsafe_fast_db:
                    results["meta"]["notes"].append(
                        "--unsafe-fast-db: PostgreSQL ran with fsync and synchronous_commit off; "
                        "database-bound figures are not those of a production set-up"
                    )
            except Exception as error:  # noqa: BLE001
                results["meta"]["notes"].append(
                    f"PostgreSQL unavailable ({error}); fell back to SQLite: "
                    "database-bound numbers are not comparable to a PostgreSQL run"
                )
        results["meta"]["database"] = db_note
        ctx = Context(params, workdir, args.smoke, args.layer, db_note)
        ctx.redis, ctx.postgres = redis, postgres
        if args.snapshot:
            ctx.snapshot, ctx.snapshot_revision = export_snapshot(workdir)
            results["meta"]["snapshot"] = ctx.snapshot_revision
        for revision in filter(None, args.against.split(",")):
            source, short = export_snapshot(workdir, revision, f"src-{revision}")
            server = DaemonAt(source, short)
            servers[server.key] = server
            keys.append(server.key)
        ctx.out = out
        ctx.py_spy = args.py_spy
        ctx.gc_diag = args.gc_diag
        ctx.profile_scenarios = tuple(x for x in args.profile_scenarios.split(",") if x)
        ctx.scenarios = tuple(x for x in (args.scenarios or "").split(",") if x)
        for round_no in range(1, params.rounds + 1):
            ctx.round = round_no
            # ABBA: the servers take turns at going first, so a drift of the machine's load
            # over the run weighs on each alike.
            for key in keys if round_no % 2 else keys[::-1]:
                of = f" (round {round_no} of {params.rounds})" if params.rounds > 1 else ""
                print(f"== {key}{of}", file=sys.stderr, flush=True)
                record = run_server(servers[key], ctx, deadline, out)
                merge_round(results["servers"], key, record, round_no)
                (out / "results.json").write_text(json.dumps(results, indent=1))
    finally:
        if ctx is not None:
            if ctx.postgres:
                ctx.postgres.stop()
                log = ctx.postgres.root / "postgres.log"
                if log.exists():
                    shutil.copyfile(log, out / "postgres.log")
            if ctx.redis:
                ctx.redis.stop()
        results["meta"]["seconds"] = round(time.monotonic() - started, 1)
        report.add_ratios(results)
        (out / "results.json").write_text(json.dumps(results, indent=1))
        (out / "summary.json").write_text(json.dumps(report.summary(results), indent=1))
        (out / "results.md").write_text(report.markdown(results))
        try:
            report.chart(results, out / "chart.png")
        except Exception as error:  # noqa: BLE001 - matplotlib missing must not lose the JSON
            print(f"chart not written: {error}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
    print(str(out))
    return results


if __name__ == "__main__":
    main()
