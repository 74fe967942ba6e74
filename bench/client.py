"""The load client: a lean asyncio WebSocket client, run in a few worker processes.

A hand-rolled RFC 6455 client over Unix sockets (no per-frame JSON parsing, no per-frame
coroutine): the bench's clients share two cores with the server they measure, so a delivery must
cost them microseconds. Client frames are masked with a zero key (legal; the payload is then sent
as is). Every measured message carries a marker ``~B<rep>:<sender>:<seq>:<t_send>~`` in its
content; a receipt finds it with ``bytes.find`` and records ``now - t_send`` (CLOCK_MONOTONIC is
system-wide, so the sender's and the receiver's clocks agree across processes).

Each worker is driven by the orchestrator over a ``multiprocessing`` pipe with small commands
(``connect``, ``run``, ``open_loop``, ``storm``, ``heartbeat``, ``stats``, ``close``, ``exit``);
every command is bounded in time by the worker and again by the orchestrator.
"""

import asyncio
import os
import random
import time

HANDSHAKE = (
    "GET {path} HTTP/1.1\r\n"
    "Host: localhost\r\n"
    "Upgrade: websocket\r\n"
    "Connection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Origin: http://localhost\r\n"
    "\r\n"
)
MARK = b"~B"
ZERO_MASK = b"\x00\x00\x00\x00"


def encode_client_frame(payload, opcode=0x1):
    """A masked client frame (zero mask key: the payload goes out unchanged)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return header + ZERO_MASK + payload


def hist_add(hist, seconds, count=1):
    """Latency histogram in 0.1 ms buckets (sparse dict, mergeable across workers)."""
    key = int(seconds * 10000)
    hist[key] = hist.get(key, 0) + count


def hist_merge(into, other):
    for key, count in other.items():
        key = int(key)
        into[key] = into.get(key, 0) + count
    return into


def hist_percentile(hist, fraction):
    """The latency (ms) below which ``fraction`` of samples fall; None when empty."""
    total = sum(hist.values())
    if not total:
        return None
    target = fraction * total
    running = 0
    for key in sorted(hist):
        running += hist[key]
        if running >= target:
            return (key + 0.5) / 10.0
    return (max(hist) + 0.5) / 10.0


def _retrieve(future):
    if not future.cancelled():
        future.exception()


class Conn(asyncio.Protocol):
    """One WebSocket connection; counts measured deliveries for its worker."""

    def __init__(self, worker, index, path, sender_id=None):
        self.worker = worker
        self.index = index
        self.path = path
        self.sender_id = sender_id
        self.transport = None
        self.open = False
        self.closed = False
        self.close_code = None
        self.buf = b""
        self.frag = None
        loop = asyncio.get_running_loop()
        self.handshake = loop.create_future()
        self.ready = loop.create_future()
        # Nobody may await these any more when the connection fails: mark them retrieved.
        self.handshake.add_done_callback(_retrieve)
        self.ready.add_done_callback(_retrieve)
        self.frames = 0
        # A frame awaited by a command (the reply to session.resume): marker, future.
        self.expect_marker = None
        self.expect = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        transport.write(HANDSHAKE.format(path=self.path).encode("latin-1"))

    def connection_lost(self, exc):
        was_open = self.open
        self.open = False
        self.closed = True
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError(f"lost before handshake: {exc}"))
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before ready ({self.close_code})"))
        if was_open:
            self.worker.on_lost(self)

    def data_received(self, data):
        if not self.open:
            data = self.buf + data
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            status = data[: data.find(b"\r\n")]
            self.buf = b""
            if b" 101 " not in status + b" ":
                if not self.handshake.done():
                    self.handshake.set_exception(ConnectionError(status.decode("latin-1")))
                self.transport.close()
                return
            self.open = True
            if not self.handshake.done():
                self.handshake.set_result(True)
            data = data[end + 4 :]
            if not data:
                return
        self.parse(data)

    # -- frames ----------------------------------------------------------------------------

    def parse(self, data):
        buf = self.buf + data if self.buf else data
        n = len(buf)
        pos = 0
        now = time.monotonic()
        while n - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            header = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                header = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                header = 10
            if b1 & 0x80:
                header += 4  # servers must not mask; tolerate it for counting
            start = pos + header
            end = start + length
            if end > n:
                break
            opcode = b0 & 0x0F
            fin = b0 & 0x80
            if opcode == 0x1 or opcode == 0x2:
                if fin:
                    self.on_message(buf, start, end, now)
                else:
                    self.frag = bytearray(buf[start:end])
            elif opcode == 0x0:
                if self.frag is not None:
                    self.frag += buf[start:end]
                    if fin:
                        whole = bytes(self.frag)
                        self.frag = None
                        self.on_message(whole, 0, len(whole), now)
            elif opcode == 0x9:
                self.transport.write(encode_client_frame(bytes(buf[start:end]), 0xA))
            elif opcode == 0x8:
                if length >= 2:
                    self.close_code = int.from_bytes(buf[start : start + 2], "big")
                else:
                    self.close_code = 1005
                if not self.transport.is_closing():
                    self.transport.write(encode_client_frame(bytes(buf[start : start + 2]), 0x8))
                    self.transport.close()
            pos = end
        self.buf = buf[pos:] if pos < n else b""

    def on_message(self, buf, start, end, now):
        self.frames += 1
        worker = self.worker
        i = buf.find(MARK, start, end)
        if i < 0 or buf.find(worker.dispatch_marker, start, end) < 0:
            worker.other_frames += 1
            if not self.ready.done():
                self.ready.set_result(True)
            elif (
                self.expect is not None
                and not self.expect.done()
                and buf.find(self.expect_marker, start, end) >= 0
            ):
                self.expect.set_result(bytes(buf[start:end]))
            elif len(worker.samples) < 3:
                worker.samples.append(
                    bytes(buf[start : min(end, start + 300)]).decode("utf-8", "replace")
                )
            return
        j = buf.find(b"~", i + 2, end)
        try:
            rep, sender, seq, t_sent = buf[i + 2 : j].split(b":")
            rep = int(rep)
        except ValueError:
            worker.bad_frames += 1
            return
        if rep != worker.rep:
            worker.stale += 1
            return
        worker.received += 1
        worker.last_recv = now
        if worker.tracker is not None:
            worker.tracker.receipt(int(sender), int(seq), now)
            return
        key = int((now - float(t_sent)) * 10000)
        hist = worker.hist
        hist[key] = hist.get(key, 0) + 1
        state = worker.senders_by_id.get(int(sender))
        if state is not None:
            seq = int(seq)
            left = state.pending.get(seq)
            if left is not None:
                if left <= 1:
                    del state.pending[seq]
                    state.freed.set()
                else:
                    state.pending[seq] = left - 1

    # -- sending ---------------------------------------------------------------------------

    def send_text(self, payload):
        if self.open and not self.transport.is_closing():
            self.transport.write(encode_client_frame(payload))
            return True
        return False

    def close(self):
        if self.transport is not None and not self.transport.is_closing():
            if self.open:
                self.transport.write(encode_client_frame(b"\x03\xe8", 0x8))
            self.transport.close()


class Sender:
    """State of one sending connection during a run: window of outstanding sequence numbers."""

    def __init__(self, conn, room, sender_id, window, local_members):
        self.conn = conn
        self.room = room
        self.sender_id = sender_id
        self.local_members = local_members
        # seq -> receipts still awaited on this worker's member connections
        self.pending = {}
        self.window = window
        self.freed = asyncio.Event()
        self.sent = 0
        self.stalls = 0


class Tracker:
    """Open-loop receipts: a message's latency is its send → its last member's receipt."""

    def __init__(self):
        self.pending = {}  # (sender_id, seq) -> [receipts still awaited, t_sent]
        self.hist = {}
        self.completed = 0
        self.unexpected = 0
        self.last_done = 0.0

    def sent(self, sender_id, seq, members, t_sent):
        self.pending[(sender_id, seq)] = [members, t_sent]

    def receipt(self, sender_id, seq, now):
        entry = self.pending.get((sender_id, seq))
        if entry is None:
            self.unexpected += 1  # a duplicate, or a frame for a message given up
            return
        entry[0] -= 1
        if entry[0] <= 0:
            del self.pending[(sender_id, seq)]
            hist_add(self.hist, now - entry[1])
            self.completed += 1
            self.last_done = now


class Worker:
    def __init__(self, sock_path, worker_id):
        self.sock_path = sock_path
        self.worker_id = worker_id
        self.conns = []
        self.rep = -1
        self.received = 0
        self.stale = 0
        self.bad_frames = 0
        self.other_frames = 0
        self.last_recv = 0.0
        self.hist = {}
        self.lost = 0
        self.close_codes = {}
        self.dispatch_marker = b"message.dispatch"
        self.senders_by_id = {}
        self.samples = []
        self.tracker = None

    # -- callbacks from Conn ---------------------------------------------------------------

    def on_lost(self, conn):
        self.lost += 1
        code = str(conn.close_code)
        self.close_codes[code] = self.close_codes.get(code, 0) + 1

    # -- commands --------------------------------------------------------------------------

    async def open_one(self, index, path, sender_id, timeout, retries, ready_probe):
        loop = asyncio.get_running_loop()
        last_error = None
        for attempt in range(retries + 1):
            conn = Conn(self, index, path, sender_id)
            try:
                async with asyncio.timeout(timeout):
                    await loop.create_unix_connection(lambda c=conn: c, self.sock_path)
                    await conn.handshake
                    if ready_probe:
                        conn.send_text(ready_probe)
                    await conn.ready
                return conn, attempt, None
            except (OSError, ConnectionError, TimeoutError) as error:
                last_error = f"{type(error).__name__}: {error}"[:200]
                conn.close()
                if attempt < retries:
                    await asyncio.sleep(min(0.05 * (attempt + 1), 0.5))
        return None, retries, last_error

    async def cmd_connect(self, targets, concurrency, timeout, retries=5, ready_probe=None):
        """Open ``targets`` ([index, path, sender_id]) with at most ``concurrency`` in flight."""
        probe = ready_probe.encode() if ready_probe else None
        semaphore = asyncio.Semaphore(concurrency)
        durations = {}
        errors = {}
        retried = 0

        async def one(index, path, sender_id):
            nonlocal retried
            async with semaphore:
                began = time.monotonic()
                conn, attempts, error = await self.open_one(
                    index, path, sender_id, timeout, retries, probe
                )
                retried += attempts
                if conn is None:
                    errors[error] = errors.get(error, 0) + 1
                    return
                hist_add(durations, time.monotonic() - began)
                self.conns.append(conn)

        started = time.monotonic()
        await asyncio.gather(*(one(*target) for target in targets))
        finished = time.monotonic()
        return {
            "ok": sum(durations.values()),
            "failed": sum(errors.values()),
            "errors": dict(list(errors.items())[:5]),
            "retries": retried,
            "started": started,
            "finished": finished,
            "hist": durations,
        }

    async def cmd_run(self, senders, rep, t_start, duration, drain, quiet, mode, window, rate,
                      frame_template, stall=10.0):  # fmt: skip
        """Send measured messages from this worker's sender connections; count receipts."""
        by_index = {conn.index: conn for conn in self.conns}
        self.rep = rep
        self.received = 0
        self.stale = 0
        self.hist = {}
        self.last_recv = 0.0
        self.senders_by_id = {}
        self.samples = []
        states = []
        for index, room, sender_id, local_members in senders:
            conn = by_index.get(index)
            if conn is None:
                continue
            state = Sender(conn, room, sender_id, window, local_members)
            self.senders_by_id[sender_id] = state
            states.append(state)
        t_end = t_start + duration
        template = frame_template

        def frame(state, seq):
            marker = f"~B{rep}:{state.sender_id}:{seq}:{time.monotonic():.6f}~"
            text = (
                template.replace("@ROOM@", state.room)
                .replace("@CONTENT@", marker)
                .replace("@CMID@", f"{os.getpid()}.{rep}.{state.sender_id}.{seq}")
            )
            return text.encode()

        async def window_loop(state):
            seq = 0
            while time.monotonic() < t_end and state.conn.open:
                if len(state.pending) >= state.window:
                    state.freed.clear()
                    try:
                        remaining = max(0.01, t_end - time.monotonic())
                        async with asyncio.timeout(min(stall, remaining)):
                            await state.freed.wait()
                    except TimeoutError:
                        if time.monotonic() >= t_end:
                            break
                        state.stalls += 1
                        state.pending.pop(min(state.pending), None)
                    continue
                seq += 1
                state.pending[seq] = state.local_members
                if state.conn.send_text(frame(state, seq)):
                    state.sent += 1

        async def rate_loop(state, offset):
            interval = 1.0 / rate
            seq = 0
            next_at = t_start + offset
            while next_at < t_end and state.conn.open:
                delay = next_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                seq += 1
                if state.conn.send_text(frame(state, seq)):
                    state.sent += 1
                next_at += interval

        delay = t_start - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if mode == "rate":
            count = max(1, len(states))
            tasks = [
                asyncio.ensure_future(rate_loop(s, (i / count) / rate))
                for i, s in enumerate(states)
            ]
        else:
            tasks = [asyncio.ensure_future(window_loop(s)) for s in states]
        if tasks:
            await asyncio.wait(tasks, timeout=duration + 5)
            for task in tasks:
                task.cancel()
        else:
            await asyncio.sleep(max(0.0, t_end - time.monotonic()))
        # Drain: until no measured frame arrived for ``quiet`` seconds, at most ``drain``.
        drain_until = max(time.monotonic(), t_end) + drain
        while time.monotonic() < drain_until:
            await asyncio.sleep(0.05)
            if self.received and time.monotonic() - max(self.last_recv, t_end) >= quiet:
                break
        self.senders_by_id = {}
        return {
            "sent": sum(s.sent for s in states),
            "stalls": sum(s.stalls for s in states),
            "received": self.received,
            "stale": self.stale,
            "last_recv": self.last_recv,
            "hist": self.hist,
            "open": sum(1 for c in self.conns if c.open),
            "other_samples": self.samples,
        }

    async def cmd_open_loop(self, senders, rep, t_start, rate, slots, duration, drain,
                            frame_template):  # fmt: skip
        """Open loop: sender ``[index, room, sender_id, slot, members]`` sends at
        ``t_start + (slot + k * slots) / rate`` for k = 0, 1, … until ``duration`` is over,
        whatever the answers: a fixed schedule, so a slow server meets its backlog instead of
        slowing the senders down. Returns the latency histogram to each message's last member."""
        by_index = {conn.index: conn for conn in self.conns}
        self.rep = rep
        self.received = 0
        self.stale = 0
        self.samples = []
        tracker = self.tracker = Tracker()
        t_end = t_start + duration
        schedule = []
        for index, room, sender_id, slot, members in senders:
            conn = by_index.get(index)
            if conn is None:
                continue
            prefix = frame_template.replace("@ROOM@", room)
            state = [conn, prefix, sender_id, members, 0]
            at = t_start + slot / rate
            while at < t_end:
                schedule.append((at, sender_id, state))
                at += slots / rate
        schedule.sort(key=lambda item: item[0])
        lag = {}
        sent = unsent = 0
        position = 0
        pid = os.getpid()
        while position < len(schedule):
            now = time.monotonic()
            due = schedule[position][0]
            if due > now:
                await asyncio.sleep(due - now)
                now = time.monotonic()
            while position < len(schedule) and schedule[position][0] <= now:
                due, sender_id, state = schedule[position]
                position += 1
                conn, prefix, _, members, seq = state
                seq = state[4] = seq + 1
                t_sent = time.monotonic()
                text = prefix.replace(
                    "@CONTENT@", f"~B{rep}:{sender_id}:{seq}:{t_sent:.6f}~"
                ).replace("@CMID@", f"{pid}.{rep}.{sender_id}.{seq}")
                tracker.sent(sender_id, seq, members, t_sent)
                if conn.send_text(text.encode()):
                    sent += 1
                    hist_add(lag, t_sent - due)
                else:
                    unsent += 1
                    tracker.pending.pop((sender_id, seq), None)
        drain_until = time.monotonic() + drain
        while tracker.pending and time.monotonic() < drain_until:
            await asyncio.sleep(0.02)
        self.tracker = None
        return {
            "sent": sent,
            "unsent": unsent,
            "completed": tracker.completed,
            "lost": len(tracker.pending),
            "unexpected": tracker.unexpected,
            "receipts": self.received,
            "last_done": tracker.last_done,
            "hist": tracker.hist,
            "lag_hist": lag,
            "open": sum(1 for c in self.conns if c.open),
            "other_samples": self.samples,
        }

    async def cmd_storm(self, clients, jitter, timeout, backoff_cap=5.0):
        """Drop every connection at once, then each client ``[index, path, resume_frame]``
        reconnects after a jittered wait (full-jitter exponential backoff on failure), sends
        ``session.resume`` and waits for its answer. Times are from the drop and, per client,
        from its first reconnect attempt."""
        loop = asyncio.get_running_loop()
        old, self.conns = self.conns, []
        dropped_at = time.monotonic()
        for conn in old:
            if conn.transport is not None:
                conn.transport.abort()
        catch_up = {}
        errors = {}
        retried_because = {}  # why attempts failed, the ones retried included
        counts = {"ok": 0, "failed": 0, "attempts": 0, "has_more": 0, "refused": 0}
        done_at = []
        deadline = dropped_at + timeout

        async def one(index, path, frame):
            await asyncio.sleep(random.uniform(0, jitter))
            began = time.monotonic()
            attempt = 0
            while True:
                counts["attempts"] += 1
                remaining = deadline - time.monotonic()
                conn, _, error = await self.open_one(
                    index, path, None, max(0.1, min(30.0, remaining)), 0, None
                )
                if conn is not None:
                    break
                attempt += 1
                retried_because[error] = retried_because.get(error, 0) + 1
                if time.monotonic() >= deadline:
                    counts["failed"] += 1
                    errors[error] = errors.get(error, 0) + 1
                    return
                await asyncio.sleep(random.uniform(0, min(backoff_cap, 0.1 * 2**attempt)))
            self.conns.append(conn)
            conn.expect_marker = b'"storm-resume"'
            conn.expect = loop.create_future()
            conn.expect.add_done_callback(_retrieve)
            conn.send_text(frame.encode())
            try:
                async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                    answer = await conn.expect
            except (TimeoutError, ConnectionError) as error:
                counts["failed"] += 1
                key = f"no resume answer: {type(error).__name__}"
                errors[key] = errors.get(key, 0) + 1
                return
            if b"session.resume" not in answer:
                counts["refused"] += 1
                key = answer[:200].decode("utf-8", "replace")
                errors[key] = errors.get(key, 0) + 1
                return
            if b'"has_more": true' in answer or b'"has_more":true' in answer:
                counts["has_more"] += 1
            now = time.monotonic()
            counts["ok"] += 1
            hist_add(catch_up, now - began)
            done_at.append(now)

        await asyncio.gather(*(one(*client) for client in clients))
        self.lost = 0
        self.close_codes = {}
        return {
            **counts,
            "dropped_at": dropped_at,
            "last_done": max(done_at) if done_at else None,
            "hist": catch_up,
            "errors": dict(list(errors.items())[:5]),
            "failed_attempts": dict(list(retried_because.items())[:5]),
        }

    async def cmd_heartbeat(self, frame, interval, duration):
        """Every connection sends ``frame`` every ``interval`` seconds (staggered)."""
        payload = frame.encode()
        conns = list(self.conns)
        started = time.monotonic()
        t_end = started + duration
        sent = 0
        before = sum(c.frames for c in conns)
        count = max(1, len(conns))
        tick = 0
        # Spread each round over the interval in 20 slices.
        slices = 20
        while time.monotonic() < t_end:
            round_start = started + tick * interval
            for s in range(slices):
                slot_at = round_start + interval * s / slices
                delay = slot_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(min(delay, max(0.0, t_end - time.monotonic())))
                if time.monotonic() >= t_end:
                    break
                for conn in conns[s * count // slices : (s + 1) * count // slices]:
                    if conn.send_text(payload):
                        sent += 1
            tick += 1
        await asyncio.sleep(min(1.0, interval))
        return {
            "sent": sent,
            "frames": sum(c.frames for c in conns) - before,
            "open": sum(1 for c in conns if c.open),
            "lost": self.lost,
            "close_codes": self.close_codes,
        }

    async def cmd_stats(self):
        return {
            "conns": len(self.conns),
            "open": sum(1 for c in self.conns if c.open),
            "lost": self.lost,
            "close_codes": self.close_codes,
            "other_frames": self.other_frames,
            "bad_frames": self.bad_frames,
        }

    async def cmd_close(self, wait=2.0):
        conns, self.conns = self.conns, []
        for conn in conns:
            conn.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(not c.closed for c in conns):
            await asyncio.sleep(0.05)
        self.lost = 0
        self.close_codes = {}
        return {"closed": len(conns)}


async def serve(pipe, sock_path, worker_id):
    worker = Worker(sock_path, worker_id)
    loop = asyncio.get_running_loop()
    while True:
        message = await loop.run_in_executor(None, pipe.recv)
        command = message.pop("cmd")
        if command == "exit":
            await worker.cmd_close(wait=1.0)
            pipe.send({"ok": True})
            return
        if "dispatch_marker" in message:
            worker.dispatch_marker = message.pop("dispatch_marker").encode()
        limit = message.pop("timeout_s", 600)
        try:
            async with asyncio.timeout(limit):
                result = await getattr(worker, f"cmd_{command}")(**message)
        except TimeoutError:
            result = {"error": f"{command} timed out in the worker after {limit}s"}
        except Exception as error:  # noqa: BLE001 - reported to the orchestrator
            result = {"error": f"{command}: {type(error).__name__}: {error}"}
        pipe.send(result)


def worker_main(pipe, sock_path, worker_id):
    """Entry point of a worker process (multiprocessing, spawn)."""
    from .proc import raise_nofile

    raise_nofile()
    try:
        import gc

        gc.freeze()
    except AttributeError:
        pass
    asyncio.run(serve(pipe, sock_path, worker_id))
