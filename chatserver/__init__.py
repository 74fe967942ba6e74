"""chatserver: a real-time chat server built on Django Channels, served by Daphne inside twistd."""

__version__ = "0.1.0"
