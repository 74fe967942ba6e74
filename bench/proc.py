"""Processes the bench starts: spawn, wait for a Unix socket, read RSS/CPU, stop by PID.

Spawning and waiting are the tests' launchers (tests/support/processes.py)."""

import os
import resource
from pathlib import Path

from tests.support.processes import Managed, wait_for_unix_socket

__all__ = [
    "Managed", "cpu_seconds", "cpu_share", "host_cpu_shares", "host_cpu_ticks", "raise_nofile",
    "rss_kib", "wait_for_unix_socket",
]  # fmt: skip

CLK_TCK = os.sysconf("SC_CLK_TCK")


def raise_nofile(wanted=200_000):
    """Raise this process's RLIMIT_NOFILE (children inherit it); returns the soft limit.

    The hard limit is raised too where the process may (root with CAP_SYS_RESOURCE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        except (ValueError, OSError):
            pass
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kib(pid):
    """VmRSS of ``pid`` in KiB, from /proc/<pid>/status (None if gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def cpu_seconds(pid):
    """User + system CPU seconds consumed by ``pid`` so far (None if gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def host_cpu_ticks():
    """The machine's CPU time so far, from the first line of /proc/stat: ``(busy, steal,
    total)`` in clock ticks over all CPUs (busy excludes idle, iowait and steal)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return user + nice + system + irq + softirq, steal, sum(fields)


def cpu_share(before, after, wall_seconds):
    """Cores' worth of CPU time between two readings (None when a reading failed)."""
    if before is None or after is None:
        return None
    return round((after - before) / wall_seconds, 2)


def host_cpu_shares(before, after):
    """Shares of all CPUs' time between two ``host_cpu_ticks()``: busy (any process, ours or
    another tenant's) and stolen by the hypervisor, the two ways a shared machine's noise
    shows."""
    if before is None or after is None or after[2] <= before[2]:
        return {}
    total = after[2] - before[2]
    return {
        "host_busy": round((after[0] - before[0]) / total, 3),
        "host_steal": round((after[1] - before[1]) / total, 3),
    }
