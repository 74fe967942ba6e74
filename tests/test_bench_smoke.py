"""The bench's smoke mode runs end to end and writes well-formed results (numbers not asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCENARIO_PREFIXES = ("idle_", "connect_storm", "fanout_", "latency_", "small_rooms_1to1")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_bench_smoke_mode_completes_and_writes_results(tmp_path):
    out = tmp_path / "bench"
    completed = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=220,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    results = json.loads((out / "results.json").read_text())
    assert {"meta", "servers", "ratios"} <= set(results)
    assert results["meta"]["smoke"] is True
    assert results["meta"]["baseline"] == "daphne"
    assert set(results["servers"]) == {"daemon", "daphne", "ceiling"}
    for key, record in results["servers"].items():
        assert {"label", "scenarios", "error"} <= set(record), key
    # The ceiling depends on nothing but Twisted: every scenario must have run there.
    ceiling = results["servers"]["ceiling"]
    assert ceiling["error"] is None, ceiling["error"]
    for prefix in SCENARIO_PREFIXES:
        assert any(name.startswith(prefix) for name in ceiling["scenarios"]), prefix

    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["servers"]) == set(results["servers"])
    assert (out / "results.md").read_text().startswith("# chatserver bench")
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
