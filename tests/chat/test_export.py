"""``chatserver export-room`` and ``export-user``: what they write, and that they stream.

The large-room test is PostgreSQL only (``make test`` runs tests/chat there too): it fills a
room with one INSERT ... SELECT generate_series and compares the exporting process's peak memory
with a room ten times smaller.
"""

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from chatserver.chat.models import Message, Room
from chatserver.chat.services import messages as message_service
from chatserver.chat.services import moderation
from chatserver.chat.services import rooms as room_service
from chatserver.chat.services import users as user_service
from chatserver.chat.services.permissions import load_access

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def lines_of(text):
    return [json.loads(line) for line in text.splitlines()]


def of_type(lines, kind):
    return [line for line in lines if line["type"] == kind]


@pytest.fixture
def history(users):
    """A room with an edit, a soft deletion, a reaction and a mute; a room alice is not in."""
    room_id = room_service.create_room(
        users.alice, {"type": "group", "name": "team", "members": [users.bob.pk, users.carol.pk]}
    ).data["room"]["id"]
    alice, bob = load_access(users.alice, room_id), load_access(users.bob, room_id)
    sent = [
        message_service.send_message(author, room_id, {"content": text})[0]["message"]["id"]
        for author, text in [(users.alice, "one"), (users.bob, "two"), (users.carol, "three")]
    ]
    message_service.modify_message(
        users.bob, bob, sent[1], {"action": "update", "content": "two, edited"}
    )
    message_service.modify_message(users.alice, alice, sent[2], {"action": "delete"})
    message_service.react(
        users.carol, load_access(users.carol, room_id), sent[0], {"action": "add", "emoji": "👍"}
    )
    until = moderation.mute_deadline({"seconds": 600})
    moderation.mute(users.alice, alice, room_id, users.carol.pk, until)
    elsewhere = room_service.create_room(users.dave, {"type": "group", "name": "other"})
    other_id = elsewhere.data["room"]["id"]
    message_service.send_message(users.dave, other_id, {"content": "not for alice"})
    return room_id, sent


def test_export_room_writes_room_members_messages_and_the_log(users, history):
    room_id, (first, second, third) = history
    out = io.StringIO()
    call_command("export_room", str(room_id), stdout=out, stderr=io.StringIO())
    lines = lines_of(out.getvalue())
    assert lines[0]["type"] == "export" and lines[0]["room_id"] == room_id
    (room,) = (line["room"] for line in of_type(lines, "room"))
    assert room["name"] == "team" and room["last_seq"] == Room.objects.get(pk=room_id).last_seq
    members = of_type(lines, "member")
    assert sorted(m["username"] for m in members) == ["alice", "bob", "carol"]
    assert all("email" not in m for m in members)
    messages = of_type(lines, "message")
    assert [m["id"] for m in messages] == [first, second, third]
    assert [m["seq"] for m in messages] == sorted(m["seq"] for m in messages)
    assert messages[0]["reactions"] == [{"emoji": "👍", "user_ids": [users.carol.pk]}]
    assert messages[1]["content"] == "two, edited" and messages[1]["is_edited"] is True
    assert messages[2]["is_deleted"] is True and messages[2]["content"] is None  # tombstone
    events = of_type(lines, "event")
    assert [e["seq"] for e in events] == list(range(1, room["last_seq"] + 1))
    modifications = [
        (e["message_id"], e["data"]["action"])
        for e in events
        if e["event_type"] == "messagemodification.dispatch"
    ]
    assert modifications == [(second, "update"), (third, "delete")]
    (mute,) = of_type(lines, "mute")
    assert mute["user_id"] == users.carol.pk
    assert "not for alice" not in out.getvalue()


def test_hard_deleted_messages_are_tombstones(users, chat_options):
    chat_options(MESSAGE_SOFT_DELETE=False)
    room_id = room_service.create_room(users.alice, {"type": "group", "name": "g"}).data["room"][
        "id"
    ]
    data, _ = message_service.send_message(users.alice, room_id, {"content": "gone soon"})
    access = load_access(users.alice, room_id)
    message_service.modify_message(users.alice, access, data["message"]["id"], {"action": "delete"})
    assert not Message.objects.filter(pk=data["message"]["id"]).exists()
    out = io.StringIO()
    call_command("export_room", str(room_id), stdout=out, stderr=io.StringIO())
    (tombstone,) = of_type(lines_of(out.getvalue()), "message")
    assert tombstone == {
        "type": "message",
        "seq": data["seq"],
        "id": data["message"]["id"],
        "room_id": room_id,
        "is_deleted": True,
        "content": None,
    }
    assert "gone soon" not in out.getvalue()


def test_export_user_is_what_they_may_see_and_wrote(users, history, tmp_path):
    room_id, (first, second, third) = history
    # alice writes in a room she then leaves: her message is hers to get, the room's rest is not.
    left = room_service.create_room(
        users.alice, {"type": "group", "name": "left", "members": [users.erin.pk]}
    ).data["room"]["id"]
    mine, _ = message_service.send_message(users.alice, left, {"content": "before leaving"})
    message_service.send_message(users.erin, left, {"content": "after alice left"})
    room_service.leave_room(users.alice, load_access(users.alice, left), left)
    user_service.block(users.alice, users.erin.pk)

    target = tmp_path / "alice.jsonl"
    call_command("export_user", "alice", output=str(target), stderr=io.StringIO())
    lines = lines_of(target.read_text(encoding="utf-8"))
    (user,) = of_type(lines, "user")
    assert user["username"] == "alice" and user["email"] == "alice@example.com"
    assert "password" not in json.dumps(lines)
    assert [r["room"]["id"] for r in of_type(lines, "room")] == [room_id]
    seen = {m["id"]: m for m in of_type(lines, "message")}
    assert {first, second, third, mine["message"]["id"]} == set(seen)
    text = target.read_text(encoding="utf-8")
    assert "not for alice" not in text and "after alice left" not in text
    assert of_type(lines, "block") == [
        {"type": "block", "blocked": users.erin.pk, "at": of_type(lines, "block")[0]["at"]}
    ]


def test_unknown_room_or_user_is_a_clear_error(users):
    with pytest.raises(CommandError, match="No room 999"):
        call_command("export_room", "999", stdout=io.StringIO())
    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("export_user", "nobody", stdout=io.StringIO())


# -- the command line, in a process of its own -----------------------------------------------


def database_url():
    """The test database as the child process's DATABASE_URL."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    host = quote(settings["HOST"] or "", safe="")
    port = f":{settings['PORT']}" if settings["PORT"] else ""
    return f"postgres://{settings['USER']}@{host}{port}/{settings['NAME']}"


MEASURE = (
    "import resource, sys\n"
    "from chatserver.manage import main\n"
    "main(['chatserver', *sys.argv[1:]])\n"
    "print('maxrss_kib', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
)


def run_export(tmp_path, *args):
    """``chatserver <args>`` in a child process; returns (stdout, peak RSS in KiB)."""
    env = dict(os.environ, DATABASE_URL=database_url(), CHATSERVER_STATE_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (peak,) = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("maxrss")]
    return done.stdout, int(peak)


def test_the_chatserver_command_writes_to_stdout_or_a_file(users, history, tmp_path):
    room_id, _ = history
    printed, _ = run_export(tmp_path, "export-room", str(room_id))
    target = tmp_path / "room.jsonl"
    run_export(tmp_path, "export-room", str(room_id), "--output", str(target))
    written = target.read_text(encoding="utf-8")
    strip = [line for line in lines_of(printed) if line["type"] != "export"]
    assert strip == [line for line in lines_of(written) if line["type"] != "export"]
    user_lines, _ = run_export(tmp_path, "export-user", "bob")
    assert of_type(lines_of(user_lines), "user")[0]["username"] == "bob"


# -- a large room, in constant memory (PostgreSQL) -------------------------------------------


def fill_room(room_id, author_id, count):
    """``count`` messages (and their creation events) in one statement each."""
    message, event = (connection.ops.quote_name(t) for t in ("chat_message", "chat_roomevent"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {message} (room_id, seq, author_id, kind, content, is_edited,"
            " is_deleted, created_at) SELECT %s, n, %s, 'text',"
            " 'message number ' || n || ' ' || repeat('x', 200), false, false, now()"
            " FROM generate_series(1, %s) AS n",
            [room_id, author_id, count],
        )
        cursor.execute(
            f"INSERT INTO {event} (room_id, seq, event_type, message_id, data, created_at)"
            " SELECT room_id, seq, 'message.dispatch', id, '{}'::jsonb, now()"
            f" FROM {message} WHERE room_id = %s",
            [room_id],
        )
        cursor.execute("UPDATE chat_room SET last_seq = %s WHERE id = %s", [count, room_id])


SMALL, LARGE = 10_000, 100_000


@pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").split(":")[0] not in ("postgres", "postgresql"),
    reason="PostgreSQL only (make test runs tests/chat there)",
)
@pytest.mark.timeout(600)
def test_exporting_a_large_room_takes_no_more_memory_than_a_small_one(users, tmp_path):
    small = room_service.create_room(users.alice, {"type": "group", "name": "small"})
    large = room_service.create_room(users.alice, {"type": "group", "name": "large"})
    small_id, large_id = small.data["room"]["id"], large.data["room"]["id"]
    # The rooms' creation events hold seq 1: the filler starts there, so clear them first.
    connection.cursor().execute(
        "DELETE FROM chat_roomevent WHERE room_id IN (%s, %s)", [small_id, large_id]
    )
    fill_room(small_id, users.alice.pk, SMALL)
    fill_room(large_id, users.alice.pk, LARGE)

    small_out = tmp_path / "small.jsonl"
    large_out = tmp_path / "large.jsonl"
    _, small_peak = run_export(tmp_path, "export-room", str(small_id), "-o", str(small_out))
    _, large_peak = run_export(tmp_path, "export-room", str(large_id), "-o", str(large_out))

    with large_out.open(encoding="utf-8") as lines:
        count = sum(1 for _ in lines)
    assert count == 2 + 1 + 2 * LARGE  # export, room, the owner; messages and events
    # Ten times the messages, about the same peak: the rows stream through. (Held in a list,
    # 100k message payloads would take well over 100 MiB.)
    print(f"peak RSS: {SMALL} messages {small_peak} KiB, {LARGE} messages {large_peak} KiB")
    assert large_peak < small_peak + 16 * 1024, (small_peak, large_peak)
