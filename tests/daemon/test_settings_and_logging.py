"""Environment-driven settings and the stdlib-to-twistd log bridge."""

import logging
import secrets

import pytest
from django.core.exceptions import ImproperlyConfigured
from twisted.logger import LogLevel, globalLogPublisher

from chatserver.daemon.logbridge import (
    TwistedLogHandler,
    every_logger,
    route_stdlib_logging_to_twisted,
    twisted_level,
)
from chatserver.settings import environment


def test_flags_accept_yes_no_words_and_refuse_others(monkeypatch):
    monkeypatch.setenv("DEBUG", "off")
    assert environment.env_flag("DEBUG", True) is False
    monkeypatch.setenv("DEBUG", "Yes")
    assert environment.env_flag("DEBUG", False) is True
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="not a boolean"):
        environment.env_flag("DEBUG", False)


def test_lists_split_on_commas(monkeypatch):
    monkeypatch.setenv("ALLOWED_HOSTS", " chat.example.com, ,www.example.com ")
    assert environment.env_list("ALLOWED_HOSTS") == ["chat.example.com", "www.example.com"]


def test_redis_url_selects_redis_for_layer_and_cache(monkeypatch):
    monkeypatch.delenv("CHATSERVER_CHANNEL_LAYER", raising=False)
    layer = environment.channel_layers("redis://127.0.0.1:6379/0")["default"]
    assert layer["BACKEND"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    (host,) = layer["CONFIG"]["hosts"]
    assert host["address"] == "redis://127.0.0.1:6379/0"
    assert host["socket_timeout"] is None  # idle sockets must not die with 1011 after ~5 s
    cache = environment.caches("redis://127.0.0.1:6379/0")["default"]
    assert cache["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    monkeypatch.setenv("CHATSERVER_CHANNEL_LAYER", "core")
    layer = environment.channel_layers("redis://127.0.0.1:6379/0")["default"]
    assert layer["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert layer["CONFIG"]["hosts"][0]["socket_timeout"] is None
    monkeypatch.setenv("CHATSERVER_CHANNEL_LAYER", "carrier-pigeon")
    with pytest.raises(ImproperlyConfigured, match="CHATSERVER_CHANNEL_LAYER"):
        environment.channel_layers("redis://127.0.0.1:6379/0")


def test_embedded_defaults_without_redis_or_database(tmp_path):
    assert environment.channel_layers("")["default"]["BACKEND"].endswith("InMemoryChannelLayer")
    assert environment.caches("")["default"]["BACKEND"].endswith("LocMemCache")
    database = environment.databases(None, tmp_path / "db.sqlite3")["default"]
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_database_url_keeps_persistent_connections():
    database = environment.databases("postgres://chat:pw@localhost/chat", None)["default"]
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert database["CONN_MAX_AGE"] == 600 and database["CONN_HEALTH_CHECKS"] is False


def test_production_check_names_every_problem():
    with pytest.raises(ImproperlyConfigured) as raised:
        environment.check_production(secret_key="", allowed_hosts=["*"], redis_url="", debug=True)
    message = str(raised.value)
    for fragment in ("DEBUG must be off", "SECRET_KEY is not set", "'*'", "REDIS_URL"):
        assert fragment in message
    environment.check_production(
        secret_key=secrets.token_urlsafe(50),
        allowed_hosts=["chat.example.com"],
        redis_url="redis://x",
        debug=False,
    )


def test_access_lines_are_on_or_off_whatever_the_level():
    quiet = environment.logging_config("WARNING", access_log=True)
    assert quiet["root"]["level"] == "WARNING"
    assert quiet["loggers"]["chatserver.access"]["level"] == "INFO"
    verbose = environment.logging_config("DEBUG", access_log=False)
    assert verbose["root"]["level"] == "DEBUG"
    assert verbose["loggers"]["chatserver.access"]["level"] == "WARNING"


@pytest.fixture
def saved_logging():
    """Every logger's handlers, propagation and level, put back after the test."""
    saved = [(lg, list(lg.handlers), lg.propagate, lg.level) for lg in every_logger()]
    yield
    for logger, handlers, propagate, level in saved:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        for handler in handlers:
            logger.addHandler(handler)
        logger.propagate, logger.level = propagate, level


def test_the_bridge_keeps_the_levels_logging_was_configured_with(saved_logging):
    """CHATSERVER_LOG_LEVEL reaches the twistd log: the bridge once set the root to INFO."""
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("chatserver.access").setLevel(logging.INFO)
    handler = route_stdlib_logging_to_twisted()
    assert logging.getLogger().handlers == [handler]
    assert logging.getLogger().level == logging.WARNING
    assert not logging.getLogger("chatserver.test.bridge").isEnabledFor(logging.INFO)
    assert logging.getLogger("chatserver.access").isEnabledFor(logging.INFO)


@pytest.mark.parametrize(
    ("stdlib", "twisted"),
    [
        (logging.DEBUG, LogLevel.debug),
        (logging.INFO, LogLevel.info),
        (logging.WARNING, LogLevel.warn),
        (logging.ERROR, LogLevel.error),
        (logging.CRITICAL, LogLevel.critical),
    ],
)
def test_levels_map(stdlib, twisted):
    assert twisted_level(stdlib) is twisted


def test_stdlib_records_reach_the_twisted_log():
    events = []
    globalLogPublisher.addObserver(events.append)
    logger = logging.getLogger("chatserver.test.bridge")
    handler = TwistedLogHandler()
    logger.addHandler(handler)
    try:
        logger.warning("disk %s is full", "/var")
    finally:
        logger.removeHandler(handler)
        globalLogPublisher.removeObserver(events.append)
    (event,) = [e for e in events if e.get("log_namespace") == "chatserver.test.bridge"]
    assert event["log_level"] is LogLevel.warn
    assert event["text"] == "disk /var is full"


def test_open_files_soft_limit_is_raised_to_the_hard_limit():
    import resource

    from chatserver.daemon.process_tuning import raise_open_files_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        assert raise_open_files_limit() == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_garbage_collector_is_tuned_for_a_server():
    import gc

    from chatserver.daemon.process_tuning import GC_THRESHOLDS, tune_garbage_collector

    before = gc.get_threshold()
    try:
        tune_garbage_collector()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
