"""WebSocket conformance: the Autobahn|Testsuite fuzzing client against the daemon's echo route.

``make conformance`` runs ``python -m tests.conformance.run WSTEST``: it starts ``twistd chat``
with ``chatserver.settings.conformance`` (the only settings with the ``/echo/`` route) on a
free loopback port, runs ``WSTEST -m fuzzingclient`` against it, prints the count of each
outcome and exits non-zero when any case FAILED. The HTML report is in reports/conformance/.
Extra arguments are case patterns to exclude (e.g. ``9.*``).
"""

import collections
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.processes import free_port
from tests.support.twistd import REPO, Daemon, daemon_env, manage, tcp_port_accepts

REPORTS = REPO / "reports" / "conformance"
MAX_MESSAGE = 20 * 1024 * 1024  # the suite's largest message is 16 MiB (cases 9.1.6, 9.2.6)


def run(wstest, exclude):
    with tempfile.TemporaryDirectory(prefix="chatserver-conformance-") as workdir:
        workdir = Path(workdir)
        state = workdir / "state"
        state.mkdir()
        env = daemon_env(state, DJANGO_SETTINGS_MODULE="chatserver.settings.conformance")
        manage(env, "migrate", "--noinput", "-v", "0")
        port = free_port()
        args = ["--port", str(port), "--max-message-size", str(MAX_MESSAGE)]
        daemon = Daemon(args, env, workdir).start(tcp_port_accepts(port))
        try:
            if REPORTS.exists():
                shutil.rmtree(REPORTS)
            spec = {
                "outdir": str(REPORTS),
                "servers": [{"agent": "chatserver", "url": f"ws://127.0.0.1:{port}/echo/"}],
                "cases": ["*"],
                "exclude-cases": exclude,
                "exclude-agent-cases": {},
            }
            (workdir / "fuzzingclient.json").write_text(json.dumps(spec))
            started = time.monotonic()
            subprocess.run(
                [wstest, "-m", "fuzzingclient", "-s", "fuzzingclient.json"],
                cwd=workdir,
                check=True,
            )
            elapsed = time.monotonic() - started
            daemon.stop_cleanly(timeout=60)
        finally:
            daemon.kill()
    results = json.loads((REPORTS / "index.json").read_text())["chatserver"]
    outcomes = collections.Counter(result["behavior"] for result in results.values())
    close = collections.Counter(result["behaviorClose"] for result in results.values())
    print(f"conformance: {len(results)} cases in {elapsed:.0f}s, excluded {exclude or 'none'}")
    print("behavior: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    print("closing behavior: " + ", ".join(f"{k} {v}" for k, v in sorted(close.items())))
    failed = sorted(
        case
        for case, result in results.items()
        if "FAILED" in (result["behavior"], result["behaviorClose"])
    )
    if failed:
        print("FAILED cases: " + " ".join(failed))
    print(f"report: {REPORTS / 'index.html'}")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m tests.conformance.run WSTEST [EXCLUDED_CASE_PATTERN...]")
    sys.exit(run(str(Path(sys.argv[1]).resolve()), sys.argv[2:]))
