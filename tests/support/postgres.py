"""A throwaway PostgreSQL cluster (initdb + pg_ctl in a temporary directory), listening on a
Unix socket only. Durability stays at PostgreSQL's defaults unless the caller passes
``settings`` (the bench turns fsync off; the tests keep the server as production runs it)."""

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote


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
    """initdb + pg_ctl start in ``workdir/pg``; ``settings`` are extra ``-c name=value``."""

    def __init__(self, workdir, databases=("chatserver",), max_connections=100, settings=None):
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
        options = f"-k {self.sockdir} -c listen_addresses='' -c max_connections={max_connections}"
        options += "".join(f" -c {name}={value}" for name, value in (settings or {}).items())
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


@contextlib.contextmanager
def throwaway_postgres(prefix="chatserver-pg-", **options):
    """A started ``Postgres(**options)`` in a temporary directory of its own (pytest's are
    private to root, and under root the cluster runs as ``postgres``); stopped and removed."""
    workdir = tempfile.mkdtemp(prefix=prefix)
    try:
        cluster = Postgres(workdir, **options)
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
