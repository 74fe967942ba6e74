"""Throwaway Redis and PostgreSQL for one bench run, on Unix sockets in a temp directory."""

import glob
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

from .proc import Managed, wait_for_unix_socket


class Redis:
    def __init__(self, workdir, binary="redis-server"):
        self.workdir = Path(workdir)
        self.sock = str(self.workdir / "redis.sock")
        binary = shutil.which(binary) or "/usr/bin/redis-server"
        self.process = Managed(
            "redis",
            [
                binary,
                "--port", "0",
                "--unixsocket", self.sock,
                "--unixsocketperm", "700",
                "--save", "",
                "--appendonly", "no",
                "--maxclients", "20000",
                "--dir", str(self.workdir),
            ],
            log_path=self.workdir / "redis.log",
        )  # fmt: skip
        if not wait_for_unix_socket(self.sock, 10, self.process):
            self.process.stop()
            raise RuntimeError(f"redis did not start: {self.process.log_tail()}")

    @property
    def url(self):
        return f"unix://{self.sock}"

    def flush(self):
        cli = shutil.which("redis-cli")
        if cli:
            subprocess.run([cli, "-s", self.sock, "FLUSHALL"], capture_output=True, timeout=10)

    def stop(self):
        self.process.stop()


def postgres_bindir():
    """The newest /usr/lib/postgresql/*/bin that has initdb, or None."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    return str(Path(candidates[-1]).parent) if candidates else None


def _unprivileged_user():
    """initdb refuses root: run the cluster as ``postgres`` (or ``nobody``) when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither 'postgres' nor 'nobody' exists for initdb")


class Postgres:
    """initdb + pg_ctl in a temp dir; listens only on a Unix socket (no TCP).

    ``durable`` keeps PostgreSQL's production defaults (``fsync``, ``synchronous_commit`` and
    ``full_page_writes`` on): a commit costs what it costs in production. Without it the cluster
    skips the flushes, for quick runs only.
    """

    def __init__(self, workdir, databases=("chatbench",), max_connections=300, durable=True):
        self.bindir = postgres_bindir()
        if not self.bindir:
            raise RuntimeError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb)")
        self.root = Path(workdir) / "pg"
        self.root.mkdir(parents=True, exist_ok=True)
        self.datadir = self.root / "data"
        self.sockdir = self.root  # socket file: <sockdir>/.s.PGSQL.5432
        self.user = _unprivileged_user()
        if self.user is not None:
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
            os.chmod(workdir, 0o755)
        self._run(
            ["initdb", "-D", str(self.datadir), "-A", "trust", "-U", "postgres", "-E", "UTF8"],
            timeout=120,
        )
        self.durable = durable
        options = (
            f"-k {self.sockdir} -c listen_addresses='' -c max_connections={max_connections} "
            "-c shared_buffers=128MB"
        )
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            [
                "pg_ctl", "-D", str(self.datadir), "-o", options,
                "-l", str(self.root / "postgres.log"), "-w", "-t", "60", "start",
            ],
            timeout=90,
        )  # fmt: skip
        self.started = True
        for name in databases:
            self.create_database(name)

    def _run(self, argv, timeout):
        argv = [os.path.join(self.bindir, argv[0])] + argv[1:]
        kwargs = {}
        if self.user is not None:
            kwargs["user"] = self.user.pw_uid
            kwargs["group"] = self.user.pw_gid
            kwargs["extra_groups"] = []
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, cwd=str(self.root), **kwargs
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()[-800:]}")
        return result

    def create_database(self, name):
        self._run(["createdb", "-h", str(self.sockdir), "-U", "postgres", name], timeout=60)

    def url(self, database):
        return f"postgres://postgres@{quote(str(self.sockdir), safe='')}/{database}"

    def pid(self):
        pidfile = self.datadir / "postmaster.pid"
        try:
            return int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        if not getattr(self, "started", False):
            return
        try:
            self._run(["pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop"], timeout=60)
        except Exception:  # noqa: BLE001 - fall back to the postmaster PID
            pid = self.pid()
            if pid:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
        self.started = False


def wait_gone(pid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False
