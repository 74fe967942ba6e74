"""The bench pools the repetitions of several rounds per server (bench.run.merge_round), names
issue 16's figures in summary.json, and runs PostgreSQL durable unless told otherwise."""

import shutil
import tempfile

import pytest

from bench.infra import Postgres, postgres_bindir
from bench.proc import host_cpu_shares, host_cpu_ticks
from bench.report import add_ratios, steps_table, summary
from bench.run import medians, merge_round


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


def test_open_loop_max_rate_is_pooled_over_rounds_and_named_in_the_summary():
    def open_loop(best):
        steps = [{"rate": 500, "p99_ms": 20.0, "lost": 0, "ok": True}]
        return {"reps": [{"max_rate": best, "steps": steps}], "median": {"max_rate": best}}

    records = {}
    for round_no, best in ((1, 1000), (2, 3000), (3, 2000)):
        record = _record([10.0], idle=round_no == 1)
        record["scenarios"]["small_rooms_open"] = open_loop(best)
        record["scenarios"]["reconnect_storm_10"] = {
            "reps": [{"catch_up_s": 2.0 * round_no, "client_catch_up_p99_ms": 900.0, "failed": 0}],
            "median": {},
        }
        merge_round(records, "daemon", record, round_no)
    results = {"meta": {"postgres_fsync": "on"}, "servers": records}
    add_ratios(results)
    summary_ = summary(results)

    assert summary_["meta"]["postgres_fsync"] == "on"
    values = summary_["servers"]["daemon"]["values"]
    assert values["small_rooms_max_rate"] == 2000  # the median of the three rounds
    assert values["reconnect_storm_10"]["catch_up_s"] == 4.0
    assert values["idle_10"]["kib_per_conn"] == 30.0
    steps = steps_table(results, ["daemon"])
    assert sum(1 for line in steps if line.startswith("| daemon |")) == 3


def test_a_round_without_a_figure_leaves_the_median_to_the_rounds_that_have_it():
    reps = [{"catch_up_s": None, "failed": 3}, {"catch_up_s": 5.0, "failed": 0}]
    assert medians(reps) == {"catch_up_s": 5.0, "failed": 1.5}


@pytest.mark.skipif(postgres_bindir() is None, reason="PostgreSQL is not installed")
@pytest.mark.timeout(180)
@pytest.mark.parametrize(("durable", "expected"), [(True, "on"), (False, "off")])
def test_the_bench_cluster_flushes_commits_unless_told_to_be_unsafe(durable, expected):
    # In /tmp like the bench's own workdir: pytest's tmp_path is closed to the postgres user.
    workdir = tempfile.mkdtemp(prefix="chatbench-test-")
    cluster = Postgres(workdir, databases=(), durable=durable)
    try:
        shown = cluster._run(
            ["psql", "-h", str(cluster.sockdir), "-U", "postgres", "-At", "-c",
             "SHOW fsync; SHOW synchronous_commit; SHOW full_page_writes"],
            timeout=30,
        ).stdout.split()  # fmt: skip
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    assert shown == [expected, expected, expected]


def test_a_server_against_an_earlier_revision_imports_that_revisions_code(tmp_path):
    """--against REV: the daemon on REV's exported chatserver, ahead of the tree's."""
    from types import SimpleNamespace

    from bench.run import export_snapshot
    from bench.servers import REPO, BareDaemon, DaemonAt

    source, short = export_snapshot(tmp_path, "HEAD", "src-HEAD")
    assert (source / "chatserver" / "chat" / "consumers.py").exists()
    server = DaemonAt(source, short)
    assert server.key == f"daemon@{short}" and server.revision == short
    ctx = SimpleNamespace(ours_env=lambda layer=None: {"PYTHONPATH": str(REPO)}, layer=None)
    assert server.env(ctx)["PYTHONPATH"] == f"{source}:{REPO}"
    assert BareDaemon("b", "b", "ours").env(ctx)["CHATBENCH_WITHOUT"] == "ratelimit,presence"
