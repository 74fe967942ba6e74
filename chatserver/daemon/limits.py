"""Process limits a chat daemon needs: one file descriptor per socket."""

import resource

from twisted.logger import Logger

log = Logger()


def raise_open_files_limit():
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the new soft limit.

    The usual soft default (1024) caps a daemon at about a thousand WebSockets; the hard limit is
    what the administrator allows (systemd's LimitNOFILE=, ulimit -Hn).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as error:
            log.warn("cannot raise the open-files limit to {hard}: {error}", hard=hard, error=error)
    log.info("open-files limit: {soft}", soft=soft)
    return soft
