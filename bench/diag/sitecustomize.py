"""Diagnostics for ``bench.run --gc-diag``: time the server's garbage-collector pauses.

On the server's PYTHONPATH only when asked; writes JSON to $CHATBENCH_GC_LOG after every
generation-2 collection (each with its time) and every 200th collection. Touches nothing else
in the process.
"""

import gc
import json
import os
import time

_path = os.environ.get("CHATBENCH_GC_LOG")
if _path:
    _state = {"start": 0.0, "n": 0}
    _stats = {
        "collections": [0, 0, 0],
        "pause_ms_total": [0.0, 0.0, 0.0],
        "pause_ms_max": [0.0, 0.0, 0.0],
        "pauses_over_10ms": 0,
        # Every full collection: [wall-clock time it ended (time.time()), pause in ms], to lay
        # beside the steps' started_at and ended_at.
        "full_collections": [],
    }

    def _dump():
        try:
            with open(_path, "w") as handle:
                json.dump(_stats, handle)
        except OSError:
            pass

    def _callback(phase, info):
        if phase == "start":
            _state["start"] = time.perf_counter()
            return
        gen = info["generation"]
        pause = (time.perf_counter() - _state["start"]) * 1000
        _stats["collections"][gen] += 1
        _stats["pause_ms_total"][gen] = round(_stats["pause_ms_total"][gen] + pause, 3)
        _stats["pause_ms_max"][gen] = round(max(_stats["pause_ms_max"][gen], pause), 3)
        if pause > 10:
            _stats["pauses_over_10ms"] += 1
        if gen == 2:
            _stats["full_collections"].append([round(time.time(), 3), round(pause, 3)])
        _state["n"] += 1
        if gen == 2 or _state["n"] % 200 == 0:
            _dump()

    gc.callbacks.append(_callback)
