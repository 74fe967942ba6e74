"""The ``chatserver`` console script shares the daemon's settings and state directory."""

import sqlite3
import subprocess

from chatserver.manage import take_state_dir
from tests.support.twistd import BIN, daemon_env


def test_state_dir_option_is_taken_wherever_it_stands():
    assert take_state_dir(["chatserver", "--state-dir", "/s", "migrate"]) == (
        ["chatserver", "migrate"],
        "/s",
    )
    assert take_state_dir(["chatserver", "migrate", "--state-dir=/t", "-v", "0"]) == (
        ["chatserver", "migrate", "-v", "0"],
        "/t",
    )
    assert take_state_dir(["chatserver", "check"]) == (["chatserver", "check"], None)


def test_migrate_creates_the_database_in_the_state_directory(tmp_path):
    env = daemon_env(tmp_path / "unused")
    state = tmp_path / "fresh" / "state"
    subprocess.run(
        [str(BIN / "chatserver"), "--state-dir", str(state), "migrate", "--noinput", "-v", "0"],
        env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    tables = sqlite3.connect(state / "db.sqlite3").execute(
        "select name from sqlite_master where type='table' and name like 'chat_%'"
    )
    assert {"chat_session", "chat_room", "chat_message"} <= {name for (name,) in tables}
