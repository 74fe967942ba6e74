"""``twistd chat`` option parsing: endpoints, settings choice, manhole safety, reactor check."""

import pytest
from twisted.internet import selectreactor
from twisted.python import usage

from chatserver.daemon.manhole import check_manhole_endpoint
from chatserver.daemon.options import Options, unix_endpoint
from chatserver.daemon.reactor import incompatible_reactor_error, install_asyncio_reactor


def parse(*argv):
    options = Options()
    options.parseOptions(list(argv))
    return options


def test_default_listens_on_loopback_port_8000():
    assert parse()["endpoints"] == ["tcp:8000:interface=127.0.0.1:backlog=1024"]


def test_socket_port_and_endpoints_combine_in_order():
    options = parse(
        "--socket", "/run/daphne/daphne.sock", "--port", "9000", "--interface", "::1",
        "--endpoint", "tcp:9001:interface=127.0.0.1", "-e", "unix:/tmp/x.sock",
    )  # fmt: skip
    assert options["endpoints"] == [
        "unix:/run/daphne/daphne.sock:mode=660:lockfile=1:backlog=1024",
        "tcp:9000:interface=\\:\\:1:backlog=1024",
        "tcp:9001:interface=127.0.0.1",
        "unix:/tmp/x.sock",
    ]


def test_unix_endpoint_escapes_colons():
    assert unix_endpoint("/tmp/a:b.sock") == "unix:/tmp/a\\:b.sock:mode=660:lockfile=1:backlog=1024"


def test_listeners_queue_a_reconnect_storm_not_fifty_connections():
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString

    for description in parse("--socket", "/tmp/x.sock", "--port", "9000")["endpoints"]:
        assert serverFromString(reactor, description)._backlog == 1024


def test_port_out_of_range_is_a_usage_error():
    with pytest.raises(usage.UsageError, match="not a TCP port"):
        parse("--port", "70000")


@pytest.mark.parametrize("value", ["0", "-3", "soon"])
def test_intervals_must_be_positive_numbers(value):
    with pytest.raises(usage.UsageError):
        parse("--heartbeat-interval", value)


def test_settings_selection(monkeypatch):
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    assert parse()["settings"] == "chatserver.settings.development"
    assert parse("--production")["settings"] == "chatserver.settings.production"
    assert parse("--settings", "my.settings")["settings"] == "my.settings"
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "from.env")
    assert parse()["settings"] == "from.env"
    with pytest.raises(usage.UsageError, match="either --production or --settings"):
        parse("--production", "--settings", "my.settings")


def test_manhole_needs_keys_file(tmp_path):
    with pytest.raises(usage.UsageError, match="go together"):
        parse("--manhole", "tcp:2222:interface=127.0.0.1")
    with pytest.raises(usage.UsageError, match="no such file"):
        parse(
            "--manhole", "tcp:2222:interface=127.0.0.1",
            "--manhole-keys", str(tmp_path / "missing"),
        )  # fmt: skip
    keys = tmp_path / "authorized_keys"
    keys.write_text("")
    options = parse("--manhole", "unix:/tmp/m.sock", "--manhole-keys", str(keys))
    assert options["manhole"] == "unix:/tmp/m.sock:mode=600"


@pytest.mark.parametrize(
    "description",
    ["tcp:2222", "tcp:2222:interface=0.0.0.0", "tcp:2222:interface=10.1.2.3", "ssl:2222"],
)
def test_manhole_refuses_non_loopback(description):
    with pytest.raises(usage.UsageError):
        check_manhole_endpoint(description)


@pytest.mark.parametrize(
    "description", ["tcp:2222:interface=127.0.0.1", "tcp6:2222:interface=\\:\\:1"]
)
def test_manhole_accepts_loopback(description):
    assert check_manhole_endpoint(description) == description


def test_manhole_remote_only_when_forced():
    description = "tcp:2222:interface=0.0.0.0"
    assert check_manhole_endpoint(description, allow_remote=True) == description


def test_only_the_asyncio_reactor_is_accepted():
    assert incompatible_reactor_error(install_asyncio_reactor()) is None
    problem = incompatible_reactor_error(selectreactor.SelectReactor())
    assert "asyncio reactor" in problem and "SelectReactor" in problem
