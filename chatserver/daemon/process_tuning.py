"""Process-wide tuning for a long-running daemon: open-files limit and garbage collector."""

import gc
import resource

from twisted.logger import Logger

log = Logger()


def raise_open_files_limit():
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the new soft limit.

    The usual soft default (1024) caps a daemon at about a thousand WebSockets; the hard limit is
    what the administrator allows (systemd's LimitNOFILE=, ulimit -Hn).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as error:
            log.warn("cannot raise the open-files limit to {hard}: {error}", hard=hard, error=error)
    log.info("open-files limit: {soft}", soft=soft)
    return soft


# Young collections every 50,000 allocations instead of 700, full collections ten times rarer.
GC_THRESHOLDS = (50_000, 20, 100)


def tune_garbage_collector():
    """Keep the collector off the hot path of a long-running server.

    Everything loaded by now (Django, the URLconf, the application) lives as long as the
    process: ``gc.freeze()`` moves it out of the collector's sight, so full collections only
    walk what was created since. Higher thresholds make collections rarer: with many sockets
    open a full collection pauses the daemon long enough to show in the latency tail.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
