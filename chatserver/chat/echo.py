"""A WebSocket consumer that sends every message back as it came, for conformance testing.

Only ``chatserver.settings.conformance`` routes to it (``/echo/``): the Autobahn|Testsuite
fuzzing client checks the server's framing, fragmentation, UTF-8 and closing handshake through
it. Answers go through the daemon's direct sender, the path room frames take, so the suite
tests that path; empty text and binary messages are echoed too.
"""

from channels.generic.websocket import AsyncWebsocketConsumer

from .delivery.localgroups import DIRECT_SENDER


class EchoConsumer(AsyncWebsocketConsumer):
    sender = None

    async def connect(self):
        self.sender = self.scope.get("extensions", {}).get(DIRECT_SENDER)
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        sender = self.sender
        if sender is not None and sender.is_open():
            if text_data is not None:
                sender.send_text(text_data)
            else:
                sender.send_bytes(bytes_data)
        else:  # under another ASGI server
            await self.send(text_data=text_data, bytes_data=bytes_data)
