"""Synchronous database work behind the handlers: one transaction per request."""
