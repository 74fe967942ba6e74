"""Processes the bench starts: spawn, wait for a Unix socket, read RSS/CPU, stop by PID."""

import os
import resource
import signal
import socket
import subprocess
import time
from pathlib import Path

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


class Managed:
    """One child process in its own session, logged to a file, stopped by its PID."""

    def __init__(self, name, argv, *, env=None, cwd=None, log_path=None, user=None):
        self.name = name
        self.argv = list(argv)
        self.log_path = Path(log_path) if log_path else None
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.popen = subprocess.Popen(
                self.argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=user,
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def log_tail(self, lines=20):
        if not self.log_path or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, timeout=10.0):
        """SIGTERM its process group (the session it leads), then SIGKILL after ``timeout``."""
        if self.popen.poll() is not None:
            return self.popen.returncode
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                break
            try:
                return self.popen.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        return self.popen.poll()


def wait_for_unix_socket(path, timeout, process=None):
    """Block until something accepts on ``path``; False on timeout or if ``process`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            return False
        if os.path.exists(path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
                return True
            except OSError:
                pass
            finally:
                probe.close()
        time.sleep(0.05)
    return False


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
