"""The sweeper and reaper jobs, driven by a fake clock instead of sleeping."""

import asyncio
from datetime import timedelta

import pytest
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.utils import timezone
from twisted.internet import defer, task

from chatserver.chat.models import Session
from chatserver.chat.protocol import CLOSE_HEARTBEAT_EXPIRED
from chatserver.daemon.maintenance import PeriodicJob, heartbeat_sweeper, session_reaper


class RecordingJob:
    def __init__(self):
        self.calls = 0
        self.pending = []
        self.fail_next = False

    def __call__(self):
        self.calls += 1
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("database went away")
        running = defer.Deferred()
        self.pending.append(running)
        return running


def started(job, interval=10):
    clock = task.Clock()
    periodic = PeriodicJob("test-job", job, interval, clock)
    periodic.startService()
    return periodic, clock


def test_first_run_waits_one_interval_then_repeats():
    job = RecordingJob()
    periodic, clock = started(job)
    assert job.calls == 0
    clock.advance(10)
    assert job.calls == 1
    job.pending[0].callback(3)
    clock.advance(10)
    assert job.calls == 2
    assert periodic.runs == 1 and periodic.last_result == 3


def test_runs_never_overlap():
    job = RecordingJob()
    periodic, clock = started(job)
    clock.advance(10)
    clock.advance(10)  # first run still pending: this tick is skipped
    assert job.calls == 1
    job.pending[0].callback(None)
    clock.advance(10)
    assert job.calls == 2


def test_a_failing_run_is_logged_and_the_next_tick_still_runs(caplog):
    job = RecordingJob()
    periodic, clock = started(job)
    job.fail_next = True
    clock.advance(10)
    assert periodic.failures == 1
    clock.advance(10)
    assert job.calls == 2
    job.pending[0].errback(RuntimeError("also failing asynchronously"))
    assert periodic.failures == 2
    clock.advance(10)
    assert job.calls == 3


def test_run_now_shares_a_run_in_progress_and_stop_waits_for_it():
    job = RecordingJob()
    periodic, clock = started(job)
    first = periodic.run_now()
    assert periodic.run_now() is first and job.calls == 1
    stopped = periodic.stopService()
    assert not stopped.called
    job.pending[0].callback(7)
    assert stopped.called
    clock.advance(100)
    assert job.calls == 1  # the loop is gone after stop


def test_sync_jobs_are_fine_too():
    periodic, clock = started(lambda: 5)
    clock.advance(10)
    assert periodic.last_result == 5 and periodic._running is None


@pytest.fixture
def user(db):
    return get_user_model().objects.create(username="dora")


def make_session(user, channel, silent_for, closed=False):
    now = timezone.now()
    return Session.objects.create(
        user=user,
        channel_name=channel,
        last_heartbeat=now - timedelta(seconds=silent_for),
        closed_at=now if closed else None,
    )


async def run_job_once(periodic, clock, interval):
    periodic.startService()
    clock.advance(interval)
    result = await periodic._running.asFuture(asyncio.get_running_loop())
    periodic.stopService()
    return result


@pytest.mark.django_db(transaction=True)
async def test_sweeper_closes_only_silent_sessions(user, settings):
    from asgiref.sync import sync_to_async

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    from chatserver.chat.delivery.fanout import user_group
    from chatserver.chat.delivery.localgroups import BUS, unbatched

    layer = get_channel_layer()
    another_daemon = await layer.new_channel()  # hears every group message, as a daemon does
    await layer.group_add(BUS, another_daemon)
    silent, lively = "socket.silent", "socket.lively"
    await sync_to_async(make_session)(user, silent, silent_for=120)
    await sync_to_async(make_session)(user, lively, silent_for=5)

    clock = task.Clock()
    sweeper = heartbeat_sweeper(15, clock, threshold=lambda: 60)
    assert await run_job_once(sweeper, clock, 15) == 1

    (told,) = unbatched(await asyncio.wait_for(layer.receive(another_daemon), 5))
    assert told["type"] == "session.close" and told["code"] == CLOSE_HEARTBEAT_EXPIRED
    assert told["group"] == user_group(user.pk)
    assert told["channels"] == [silent]  # the lively socket of the same user stays open
    rows = {
        s.channel_name: s async for s in Session.objects.filter(channel_name__in=[silent, lively])
    }
    assert rows[silent].closed_at is not None
    assert rows[silent].close_code == CLOSE_HEARTBEAT_EXPIRED
    assert rows[lively].closed_at is None


@pytest.mark.django_db(transaction=True)
async def test_reaper_deletes_rows_past_retention(user):
    from asgiref.sync import sync_to_async

    await sync_to_async(make_session)(user, "old-open", silent_for=2 * 86400)
    await sync_to_async(make_session)(user, "old-closed", silent_for=2 * 86400, closed=True)
    await sync_to_async(make_session)(user, "recent-closed", silent_for=3600, closed=True)

    clock = task.Clock()
    reaper = session_reaper(3600, clock, retention_seconds=86400)
    assert await run_job_once(reaper, clock, 3600) == 2
    remaining = [s.channel_name async for s in Session.objects.all()]
    assert remaining == ["recent-closed"]
