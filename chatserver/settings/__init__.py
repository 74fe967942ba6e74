"""Django settings for chatserver.

``development`` runs on embedded defaults (SQLite, in-process channel layer) unless the
environment names Redis or a database; ``production`` reads everything from the environment and
refuses to start when something essential is missing.
"""
