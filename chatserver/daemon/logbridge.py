"""Send stdlib ``logging`` records (Django, Daphne, Channels, ours) to the twistd log."""

import logging

from twisted.logger import Logger, LogLevel

LEVELS = [
    (logging.CRITICAL, LogLevel.critical),
    (logging.ERROR, LogLevel.error),
    (logging.WARNING, LogLevel.warn),
    (logging.INFO, LogLevel.info),
]


def twisted_level(levelno):
    for threshold, level in LEVELS:
        if levelno >= threshold:
            return level
    return LogLevel.debug


class TwistedLogHandler(logging.Handler):
    """A logging handler that re-emits each record as a twisted.logger event."""

    def emit(self, record):
        try:
            text = self.format(record)
            Logger(namespace=record.name).emit(twisted_level(record.levelno), "{text}", text=text)
        except Exception:
            self.handleError(record)


def route_stdlib_logging_to_twisted():
    """Make the bridge the only destination of stdlib logging.

    Django's logging configuration (run by every ``django.setup()``) attaches console handlers
    to the root and ``django`` loggers; under twistd those would bypass the twistd log, so they
    are removed and every logger propagates to the root, whose one handler is the bridge. The
    levels stay as LOGGING set them (CHATSERVER_LOG_LEVEL, CHATSERVER_ACCESS_LOG).
    """
    handler = TwistedLogHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    for logger in every_logger():
        for existing in list(logger.handlers):
            logger.removeHandler(existing)
        logger.propagate = True
    logging.getLogger().addHandler(handler)
    return handler


def every_logger():
    """The root logger and every logger made so far (placeholders left out)."""
    return [logging.getLogger()] + [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
