"""``twistd chat``: build the daemon's service tree.

    MultiService
    ├─ heartbeat sweeper   close sockets silent for INACTIVITY_THRESHOLD (4408)
    ├─ session reaper      delete session rows past the retention
    ├─ DaphneService       Daphne's factories + one listener per endpoint
    ├─ systemd notify      READY=1, STATUS=, WATCHDOG=1, STOPPING=1 (Type=notify units)
    ├─ manhole (optional)  SSH, public keys only, loopback or Unix socket
    └─ metrics (optional)  Prometheus /metrics listener (loopback) and event-loop lag probe

Importing this module installs Twisted's asyncio reactor when none is installed yet (twistd has
already installed any ``-r`` reactor by now); Options refuses any other reactor.
"""

from .reactor import install_asyncio_reactor

install_asyncio_reactor()

from twisted.application import service  # noqa: E402

from .options import Options as BaseOptions  # noqa: E402


class Options(BaseOptions):
    def postOptions(self):
        super().postOptions()
        from .django_setup import configure_django

        settings = configure_django(self["settings"], self["state-dir"])
        refuse_exposed_development(settings, self["endpoints"], self["i-know-this-is-development"])


def refuse_exposed_development(settings, endpoints, insisted):
    """The development settings sign tokens with a published key and show debug pages: serving
    them where other hosts can connect needs ``--i-know-this-is-development``."""
    if insisted or not getattr(settings, "DEVELOPMENT_SETTINGS", False):
        return
    from twisted.python import usage

    from .endpoints import is_loopback_endpoint

    exposed = [endpoint for endpoint in endpoints if not is_loopback_endpoint(endpoint)]
    if exposed:
        raise usage.UsageError(
            f"refusing to serve the development settings on {', '.join(exposed)}: other hosts "
            "could connect. Use --production (settings from the environment), a loopback "
            "interface, or --i-know-this-is-development if you mean it."
        )


def makeService(options, reactor=None):
    """The daemon's services; nothing listens until they are started."""
    if reactor is None:
        from twisted.internet import reactor
    from channels.layers import get_channel_layer
    from django.conf import settings

    from chatserver.chat.conf import option

    from .daphne_service import DaphneService
    from .django_setup import migrate
    from .logbridge import route_stdlib_logging_to_twisted
    from .maintenance import heartbeat_sweeper, session_reaper
    from .process_tuning import raise_open_files_limit, tune_garbage_collector

    if not options["no-migrate"]:
        migrate()

    # Importing the application runs django.setup() again, which reconfigures logging: route
    # stdlib logging to the twistd log only afterwards.
    from chatserver.asgi import application

    route_stdlib_logging_to_twisted()
    raise_open_files_limit()

    root = service.MultiService()

    retention_hours = options["session-retention"] or option("SESSION_RETENTION_HOURS")
    sweeper = heartbeat_sweeper(
        options["heartbeat-interval"], reactor, lambda: option("INACTIVITY_THRESHOLD")
    )
    reaper = session_reaper(options["reap-interval"], reactor, retention_hours * 3600)
    sweeper.setName("heartbeat-sweeper")
    reaper.setName("session-reaper")
    sweeper.setServiceParent(root)
    reaper.setServiceParent(root)

    daphne = DaphneService(
        application,
        options["endpoints"],
        reactor,
        drain=options["drain"],
        max_message_size=options["max-message-size"],
        websocket_timeout=options["websocket-timeout"],
        proxy_headers=options["proxy-headers"],
        channel_layer=get_channel_layer(),
        max_handshakes=options["max-handshakes"],
    )
    daphne.setName("daphne")
    daphne.setServiceParent(root)

    # After Daphne, so it stops first: STOPPING=1 and /readyz 503 before the drain begins.
    from .systemd_service import SystemdNotifyService

    notify = SystemdNotifyService(reactor, daphne.listeners, daphne.connection_count)
    notify.setName("systemd-notify")
    notify.setServiceParent(root)

    if options["manhole"]:
        from .listening import ListeningService
        from .manhole import load_or_create_host_key, manhole_factory
        from .operator_tools import OperatorTools

        tools = OperatorTools(daphne, sweeper, reaper)
        factory = manhole_factory(
            tools.namespace(),
            options["manhole-keys"],
            load_or_create_host_key(settings.STATE_DIR),
        )
        manhole = ListeningService(reactor, options["manhole"], factory)
        manhole.setName("manhole")
        manhole.setServiceParent(root)

    if options["metrics"]:
        from .metrics import metrics_service

        metrics_service(options["metrics"], reactor, daphne).setServiceParent(root)

    tune_garbage_collector()
    return root
