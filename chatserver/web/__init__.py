"""The people's side: the browser chat served at ``/`` and self-service sign-up.

Everything here is plain HTTP; the chat itself speaks the WebSocket protocol of chatserver.chat
from the browser (static/web/*.js).
"""
