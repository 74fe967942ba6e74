"""The bench pools the repetitions of several rounds per server (bench.run.merge_round)."""

from bench.proc import host_cpu_shares, host_cpu_ticks
from bench.run import merge_round


def _record(rates, error=None, idle=True):
    scenarios = {
        "fanout_100x1": {
            "reps": [{"deliveries_per_s": rate, "p99_ms": 10.0} for rate in rates],
            "median": {},
            "connect": {"ok": 100},
        },
    }
    if idle:
        scenarios["idle_10"] = {"kib_per_conn": 30.0, "errors": 0}
    return {"label": "x", "scenarios": scenarios, "error": error, "git": "abc", "pid": 1}


def test_rounds_pool_repetitions_and_recompute_medians():
    records = {}
    merge_round(records, "daemon", _record([10.0]), 1)
    merge_round(records, "daemon", _record([30.0], idle=False), 2)
    merge_round(records, "daemon", _record([20.0], idle=False), 3)

    fanout = records["daemon"]["scenarios"]["fanout_100x1"]
    assert [rep["deliveries_per_s"] for rep in fanout["reps"]] == [10.0, 30.0, 20.0]
    assert [rep["round"] for rep in fanout["reps"]] == [1, 2, 3]
    assert fanout["median"]["deliveries_per_s"] == 20.0
    assert records["daemon"]["scenarios"]["idle_10"]["kib_per_conn"] == 30.0  # first round's
    assert len(records["daemon"]["rounds"]) == 3


def test_a_failed_round_is_recorded_and_a_later_one_fills_a_missing_scenario():
    records = {}
    failed = _record([])
    failed["scenarios"]["fanout_100x1"] = {"error": "server did not start"}
    merge_round(records, "uvicorn", dict(failed, error="server did not start"), 1)
    merge_round(records, "uvicorn", _record([40.0], idle=False), 2)

    record = records["uvicorn"]
    assert record["error"] == "server did not start"
    assert record["scenarios"]["fanout_100x1"]["reps"][0]["deliveries_per_s"] == 40.0
    assert record["scenarios"]["fanout_100x1"]["reps"][0]["round"] == 2

    later = _record([], error="boom", idle=False)
    later["scenarios"]["fanout_100x1"] = {"error": "members failed to connect"}
    merge_round(records, "uvicorn", later, 3)
    assert record["rounds"][2]["error"] == "boom"
    assert record["error"] == "server did not start"  # the first failure stays named
    fanout = record["scenarios"]["fanout_100x1"]
    assert len(fanout["reps"]) == 1  # the measured repetition stands, the failure is named
    assert fanout["round_errors"] == ["round 3: members failed to connect"]


def test_host_cpu_shares_split_busy_and_stolen_time():
    assert host_cpu_shares((100, 10, 1000), (250, 60, 1500)) == {
        "host_busy": 0.3,
        "host_steal": 0.1,
    }
    assert host_cpu_shares(None, (1, 1, 1)) == {}
    busy, steal, total = host_cpu_ticks()
    assert 0 <= busy <= total and 0 <= steal <= total
