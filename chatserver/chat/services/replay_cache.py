"""Replayed events' frames, kept for a few seconds and shared by every replay of the process.

After a restart every client resumes at once, a few at a time per batch, and the members of a
room fall into different batches: each batch read and encoded the room's events again (in a
reconnect storm of 20-member rooms, twenty times each). A frame built once serves the replays of
the next ``REPLAY_CACHE_SECONDS`` (0: none are kept).

A frame is the event as the room's log and its message are now. Whatever changes a message
(an edit, a deletion, a reaction) is a room event too, so it moves the room's ``last_seq``: a
frame is only used while its room's ``last_seq`` is the one it was built at, which the replay
reads from the database for every batch, on every daemon. What does not move it (a renamed or
deleted author, an edit in the admin) shows in replays at most ``REPLAY_CACHE_SECONDS`` late.
"""

import threading
import time

MAX_FRAMES = 200_000  # past it the cache starts over: a bound, not a size anyone should reach


class ReplayCache:
    def __init__(self, seconds, clock=time.monotonic):
        """``seconds``: a callable giving how long a frame is kept (read at each call)."""
        self.seconds = seconds
        self.clock = clock
        self._frames = {}  # (room id, seq) -> (room's last_seq, expiry, frame text)
        self._lock = threading.Lock()  # replays run in the database thread; tests elsewhere
        self._next_sweep = 0.0

    def take(self, spans, last_seqs):
        """The kept frames of the ``(room id, first seq, last seq)`` spans, and the spans of
        the seqs not kept: ``({(room id, seq): text}, [(room id, first, last), ...])``.
        ``last_seqs``: each span's room's ``last_seq`` now."""
        if self.seconds() <= 0:
            return {}, spans
        found, missing = {}, []
        now = self.clock()
        with self._lock:
            frames = self._frames
            for room_id, first, last in spans:
                current = last_seqs[room_id]
                start = None  # first seq of the run of misses being collected
                for seq in range(first, last + 1):
                    kept = frames.get((room_id, seq))
                    if kept is not None and kept[0] == current and kept[1] > now:
                        found[(room_id, seq)] = kept[2]
                        if start is not None:
                            missing.append((room_id, start, seq - 1))
                            start = None
                    elif start is None:
                        start = seq
                if start is not None:
                    missing.append((room_id, start, last))
        return found, missing

    def keep(self, frames, last_seqs):
        """Keep ``{(room id, seq): text}``, built while each room's ``last_seq`` was
        ``last_seqs[room id]``."""
        seconds = self.seconds()
        if seconds <= 0 or not frames:
            return
        now = self.clock()
        expiry = now + seconds
        with self._lock:
            if now >= self._next_sweep or len(self._frames) + len(frames) > MAX_FRAMES:
                self._sweep(now, len(frames))
                self._next_sweep = now + seconds
            for key, text in frames.items():
                self._frames[key] = (last_seqs[key[0]], expiry, text)

    def _sweep(self, now, incoming):
        """Drop the expired frames; all of them when that leaves no room for ``incoming``."""
        frames = self._frames
        for key in [key for key, kept in frames.items() if kept[1] <= now]:
            del frames[key]
        if len(frames) + incoming > MAX_FRAMES:
            frames.clear()

    def clear(self):
        with self._lock:
            self._frames.clear()
