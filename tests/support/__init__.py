"""Launchers for the real servers the tests and the bench run: Redis (``redis``), a throwaway
PostgreSQL cluster (``postgres``), the ``twistd chat`` daemon (``twistd``) and nginx (``nginx``),
all built on one child-process helper (``processes``). Servers listen on 127.0.0.1 or Unix
sockets only and are stopped by PID."""
