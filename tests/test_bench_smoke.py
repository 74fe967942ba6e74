"""The bench's smoke mode runs end to end and writes well-formed results (numbers not asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCENARIO_PREFIXES = ("idle_", "connect_storm", "fanout_", "latency_", "small_rooms_1to1")
# Scenarios of chatserver's own protocol (session.resume, message.send to small rooms).
OURS_SCENARIOS = ("reconnect_storm_10", "small_rooms_open")


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

    # The daemon ran the open-loop small rooms and the reconnect storm, with nothing lost.
    daemon = results["servers"]["daemon"]
    assert daemon["error"] is None, daemon["error"]
    for name in OURS_SCENARIOS:
        assert "error" not in daemon["scenarios"][name], daemon["scenarios"][name]
    idle = daemon["scenarios"]["idle_6"]
    assert idle["errors"] == 0 and idle["open_after"] == 6, idle
    assert idle["load_client_processes"] == 2, idle  # sockets spread over client processes
    storm = daemon["scenarios"]["reconnect_storm_10"]["reps"][0]
    assert storm["caught_up"] == 10 and storm["failed"] == 0, storm
    assert storm["refused"] == 0 and storm["attempts"] >= 10, storm
    steps = daemon["scenarios"]["small_rooms_open"]["reps"][0]["steps"]
    assert steps and all(step["sent"] > 0 for step in steps), steps
    assert steps[0]["lost"] == 0 and steps[0]["completed"] == steps[0]["sent"], steps[0]

    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["servers"]) == set(results["servers"])
    assert summary["meta"]["postgres_fsync"] is None  # smoke runs on SQLite
    values = summary["servers"]["daemon"]["values"]
    assert isinstance(values["small_rooms_max_rate"], int), values
    assert values["reconnect_storm_10"]["failed"] == 0, values
    assert isinstance(values["reconnect_storm_10"]["catch_up_s"], float), values
    assert "Small rooms, open loop" in (out / "results.md").read_text()
    assert (out / "results.md").read_text().startswith("# chatserver bench")
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
