"""Run inside the daemon (through the manhole): where an idle socket's bytes go.

``begin(path)`` starts tracemalloc and takes the "before" picture; ``finish(path, sockets)``
takes the "after" one and writes, per socket, the bytes traced by allocation site and package,
and the objects the collector sees by type (count and shallow size). Each writes ``path`` last,
so the caller polls for the file.
"""

import gc
import json
import os
import sys
import tracemalloc
from collections import Counter

# Deep enough to reach the package that allocated; at 25 frames the daemon stopped
# finishing WebSocket handshakes (seen once, not investigated).
FRAMES = 16
_before = {}
PROTOCOL = "chatserver.daemon.daphne_service.ChatWebSocketProtocol"


def _type_census():
    """Objects the collector sees, counted and sized (shallow) by type."""
    counts, sizes = Counter(), Counter()
    for obj in gc.get_objects():
        kind = type(obj)
        counts[kind] += 1
        sizes[kind] += sys.getsizeof(obj)
    return counts, sizes


def _own_bytes(*counters):
    """What the census itself holds (traced when it runs after tracemalloc started)."""
    return sum(
        sys.getsizeof(counter) + sum(sys.getsizeof(value) for value in counter.values())
        for counter in counters
    )


def _name(kind):
    return f"{kind.__module__}.{kind.__qualname__}"


def begin(path, frames=FRAMES):
    gc.collect()
    tracemalloc.start(frames)
    _before["census"] = _type_census()
    _before["snapshot"] = tracemalloc.take_snapshot()
    _write(path, {"ok": True})


def _owner(traceback):
    """The innermost frame in a package or in our code (not the standard library)."""
    for frame in reversed(traceback):  # most recent call last
        name = frame.filename
        if "site-packages" in name or "/chatserver/" in name:
            short = name.split("site-packages/")[-1].split("/chatserver/")[-1]
            return f"{short}:{frame.lineno}"
    frame = traceback[-1]
    return f"{frame.filename}:{frame.lineno}"


def _package(traceback):
    for frame in reversed(traceback):
        name = frame.filename
        if "site-packages/" in name:
            return name.split("site-packages/")[1].split("/")[0]
        if "/chatserver/" in name:
            return "chatserver/" + name.split("/chatserver/")[1].split("/")[0]
    return "stdlib"


def finish(path, opened, top=40):
    """``sockets``: how many the caller opened; the per-socket figures divide by the WebSocket
    protocols the collector finds added, which is the same number unless some closed."""
    gc.collect()
    counts, sizes = _type_census()  # before the snapshot, whose traces are tuples
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    counts0, sizes0 = _before.pop("census")
    sockets = (
        sum(counts[kind] - counts0[kind] for kind in counts if _name(kind) == PROTOCOL) or opened
    )
    before = _before.pop("snapshot")
    by_site, by_package, by_line = Counter(), Counter(), Counter()
    for stat in after.compare_to(before, "traceback"):
        if stat.size_diff == 0:
            continue
        by_site[_owner(stat.traceback)] += stat.size_diff
        by_package[_package(stat.traceback)] += stat.size_diff
        frame = stat.traceback[-1]
        by_line[f"{frame.filename.split('/')[-1]}:{frame.lineno}"] += stat.size_diff
    by_package["(this census)"] -= _own_bytes(counts, sizes)
    total = sum(by_package.values())
    types = {
        _name(kind): {
            "per_socket": round((counts[kind] - counts0[kind]) / sockets, 2),
            "bytes_per_socket": round((sizes[kind] - sizes0[kind]) / sockets, 1),
        }
        for kind in counts
        if abs(counts[kind] - counts0[kind]) >= sockets / 2
    }
    result = {
        "sockets_opened": opened,
        "sockets": sockets,
        "traced_bytes_per_socket": round(total / sockets, 1),
        "by_package": _per_socket(by_package, sockets, top),
        "by_site": _per_socket(by_site, sockets, top),
        "by_line": _per_socket(by_line, sockets, top),
        "types": dict(sorted(types.items(), key=lambda item: -item[1]["bytes_per_socket"])),
    }
    _write(path, result)


def _per_socket(counter, sockets, top):
    return {key: round(size / sockets, 1) for key, size in counter.most_common(top)}


def _write(path, data):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=1)
    os.replace(tmp, path)
