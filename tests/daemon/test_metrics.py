"""``--metrics``: option safety, the daemon's own metrics, and a real scrape of a real daemon."""

import asyncio
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, task
from twisted.python import usage

from chatserver.daemon.direct_send import DirectFrames
from chatserver.daemon.maintenance import PeriodicJob
from chatserver.daemon.metrics import EventLoopLagProbe
from chatserver.daemon.options import Options
from tests.chat.test_metrics import Delta
from tests.support.processes import free_port
from tests.support.twistd import Daemon, tcp_port_accepts

from .test_end_to_end import (  # noqa: F401 - fixtures reused as they are
    closed_code,
    next_event,
    redis_env,
    request,
    state_dir,
    tcp_client,
    users,
)


def parse(*argv):
    options = Options()
    options.parseOptions(list(argv))
    return options


# -- options -------------------------------------------------------------------------------


def test_no_metrics_option_means_no_listener():
    assert parse()["metrics"] is None


@pytest.mark.parametrize(
    "value, endpoint",
    [
        ("9100", "tcp:9100:interface=127.0.0.1"),
        ("tcp:9100:interface=127.0.0.1", "tcp:9100:interface=127.0.0.1"),
        ("tcp6:9100:interface=\\:\\:1", "tcp6:9100:interface=\\:\\:1"),
        ("unix:/run/chat/metrics.sock", "unix:/run/chat/metrics.sock:mode=660"),
        ("unix:/run/chat/metrics.sock:mode=600", "unix:/run/chat/metrics.sock:mode=600"),
    ],
)
def test_metrics_endpoints_on_loopback_or_unix_are_accepted(value, endpoint):
    assert parse("--metrics", value)["metrics"] == endpoint


@pytest.mark.parametrize(
    "value",
    [
        "tcp:9100",  # no interface: every address
        "tcp:9100:interface=0.0.0.0",
        "tcp:9100:interface=192.0.2.7",
        "ssl:9100:interface=192.0.2.7",
        "systemd:domain=INET:index=0",  # cannot tell where it listens
        "70000",
    ],
)
def test_metrics_off_loopback_is_refused(value):
    with pytest.raises(usage.UsageError, match="--metrics"):
        parse("--metrics", value)


def test_metrics_allow_remote_lets_the_operator_insist():
    options = parse("--metrics", "tcp:9100:interface=0.0.0.0", "--metrics-allow-remote")
    assert options["metrics"] == "tcp:9100:interface=0.0.0.0"


# -- the daemon's metrics, unit by unit ------------------------------------------------------


def test_lag_probe_records_how_late_its_timer_runs():
    clock = task.Clock()
    histogram = Histogram("lag", "test", registry=CollectorRegistry(), buckets=(0.1, 1, 10))
    probe = EventLoopLagProbe(clock, interval=0.5, histogram=histogram)
    probe.startService()
    clock.advance(0.5)  # on time
    clock.advance(2.5)  # due at 1.0, run at 3.0: two seconds late
    probe.stopService()
    clock.advance(10)  # stopped: no more observations
    assert not clock.getDelayedCalls()
    samples = {s.name + str(s.labels): s.value for s in histogram.collect()[0].samples}
    assert samples["lag_count{}"] == 2
    assert samples["lag_sum{}"] == pytest.approx(2.0)
    assert samples["lag_bucket{'le': '0.1'}"] == 1


def test_maintenance_runs_and_their_results_are_counted():
    results = iter([3, 0])

    def job():
        value = next(results, None)
        if value is None:
            raise RuntimeError("database went away")
        return defer.succeed(value)

    delta = Delta()
    periodic = PeriodicJob("heartbeat-sweeper", job, 10, task.Clock())
    for _ in range(3):
        periodic.run_now()
    runs = "chatserver_maintenance_runs_total"
    assert delta(runs, job="heartbeat-sweeper", outcome="ok") == 2
    assert delta(runs, job="heartbeat-sweeper", outcome="failed") == 1
    assert delta("chatserver_maintenance_sessions_total", job="heartbeat-sweeper") == 3


def test_frames_queued_on_a_socket_that_closes_are_counted_as_dropped():
    class Lost:
        def connectionLost(self, reason):  # noqa: N802 - Twisted's name
            pass

    class Protocol(DirectFrames, Lost):
        pass

    delta = Delta()
    protocol = Protocol()
    protocol.direct_frames = [b"one", b"two"]
    protocol.connectionLost("gone")
    protocol.connectionLost("again")  # nothing queued any more: nothing counted
    assert delta("chatserver_frames_dropped_total", reason="closed") == 2


# -- end to end: twistd, redis-server, WebSocket clients, an HTTP scrape ---------------------


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


async def scrape(port):
    """The daemon's /metrics as {(sample name, sorted labels): value}."""
    status, text = await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scraped_until(port, condition, timeout=30):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        samples = await scrape(port)
        if condition(samples) or asyncio.get_running_loop().time() > deadline:
            return samples
        await asyncio.sleep(0.2)


@pytest.mark.timeout(90)
async def test_a_real_daemon_serves_exact_counts(tmp_path, redis_env, users):  # noqa: F811
    chat, metrics = free_port(), free_port()
    args = ["--port", str(chat), "--metrics", f"tcp:{metrics}:interface=127.0.0.1"]
    args += ["--heartbeat-interval", "0.3"]
    daemon = Daemon(args, redis_env, tmp_path)
    daemon.start(lambda: tcp_port_accepts(chat)() and tcp_port_accepts(metrics)())
    sent = 5
    try:
        async with tcp_client(chat, "not-a-token") as anonymous:
            assert await closed_code(anonymous) == 4001
        async with (
            tcp_client(chat, users["alice"]["token"]) as alice,
            tcp_client(chat, users["bob"]["token"]) as bob,
        ):
            await next_event(alice, "chat.notifications")
            await next_event(bob, "chat.notifications")
            data = {"type": "group", "name": "metrics", "members": [users["bob"]["id"]]}
            room_id = (await request(alice, "room.create", data))["data"]["room"]["id"]
            for n in range(sent):
                reply = await request(
                    alice, "message.send", {"room_id": room_id, "content": f"m{n}"}
                )
                assert reply["eventType"] == "message.dispatch", reply
                await next_event(bob, "message.dispatch")

            sweeps = (
                "chatserver_maintenance_runs_total",
                (("job", "heartbeat-sweeper"), ("outcome", "ok")),
            )
            samples = await scraped_until(metrics, lambda s: s.get(sweeps, 0) >= 2)

            def value(name, **labels):
                return samples.get((name, tuple(sorted(labels.items()))))

            assert value("chatserver_open_websockets") == 2
            assert value("chatserver_websocket_connects_total", outcome="accepted") == 2
            assert value("chatserver_websocket_connects_total", outcome="refused") == 1
            assert value("chatserver_messages_stored_total") == sent
            assert value("chatserver_message_batch_size_sum") == sent
            assert value("chatserver_room_frame_deliveries_total") >= sent
            store = value("chatserver_database_seconds_count", operation="store_messages")
            assert store == value("chatserver_message_batch_size_count") >= 1
            assert value("chatserver_database_seconds_count", operation="connect") == 2
            assert value("chatserver_channel_layer_seconds_count", operation="group_send") >= 1
            assert value("chatserver_event_loop_lag_seconds_count") >= 1
            assert samples[sweeps] >= 2  # every 0.3 s: runs counted as they finish
            assert value("process_resident_memory_bytes") > 0  # the default collectors too

        samples = await scraped_until(
            metrics, lambda s: s.get(("chatserver_open_websockets", ())) == 0
        )
        assert samples[("chatserver_open_websockets", ())] == 0
        # Only /metrics, only on its own listener: the chat listener does not serve it.
        assert (await asyncio.to_thread(fetch, f"http://127.0.0.1:{metrics}/"))[0] == 404
        assert (await asyncio.to_thread(fetch, f"http://127.0.0.1:{chat}/metrics"))[0] == 404
        log = daemon.stop_cleanly()
        assert f"metrics listening on http://127.0.0.1:{metrics}/ (tcp)" in log
    finally:
        daemon.kill()


@pytest.mark.timeout(60)
def test_without_the_option_nothing_serves_metrics(tmp_path, redis_env):  # noqa: F811
    chat = free_port()
    daemon = Daemon(["--port", str(chat)], redis_env, tmp_path).start(tcp_port_accepts(chat))
    try:
        assert "metrics listening" not in daemon.log()
        assert fetch(f"http://127.0.0.1:{chat}/metrics")[0] == 404
        daemon.stop_cleanly()
    finally:
        daemon.kill()
