"""The ceiling: a bare Autobahn/Twisted broadcast server, no ASGI, no Django, no channel layer.

Speaks just enough of the chat wire format for the load client: a connection names its rooms in
the query string (``?rooms=1,2``; ``token`` is ignored), gets a ``session.ready`` frame on open,
``message.send`` is encoded once as ``message.dispatch`` and written to every member socket of the
room with ``sendPreparedMessage``, and ``session.heartbeat`` gets a small reply.

    python -m bench.ceiling --socket /tmp/x.sock
"""

import argparse
import json
import os
import sys
import time

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol


class BroadcastProtocol(WebSocketServerProtocol):
    rooms = ()

    def onConnect(self, request):  # noqa: N802 - Autobahn's callback names
        raw = ",".join(request.params.get("rooms", []))
        self.rooms = tuple(int(r) for r in raw.split(",") if r.strip().isdigit())
        return None

    def onOpen(self):  # noqa: N802
        members = self.factory.members
        for room in self.rooms:
            members.setdefault(room, set()).add(self)
        self.sendMessage(b'{"eventType":"session.ready","data":{}}')

    def onMessage(self, payload, is_binary):  # noqa: N802
        try:
            frame = json.loads(payload)
            event_type = frame["event_type"]
        except (ValueError, KeyError, TypeError):
            self.sendMessage(b'{"eventType":"error","error":{"code":4000}}')
            return
        if event_type == "message.send":
            data = frame.get("data") or {}
            room = data.get("room_id")
            self.factory.seq += 1
            body = {
                "eventType": "message.dispatch",
                "data": {"room_id": room, "seq": self.factory.seq, "content": data.get("content")},
            }
            prepared = self.factory.prepareMessage(json.dumps(body).encode())
            for member in tuple(self.factory.members.get(room, ())):
                member.sendPreparedMessage(prepared)
        elif event_type == "session.heartbeat":
            reply = {
                "eventType": "session.heartbeat",
                "data": {"server_time": time.time()},
                "request_id": frame.get("request_id"),
            }
            self.sendMessage(json.dumps(reply).encode())

    def onClose(self, was_clean, code, reason):  # noqa: N802
        for room in self.rooms:
            self.factory.members.get(room, set()).discard(self)


class BroadcastFactory(WebSocketServerFactory):
    protocol = BroadcastProtocol

    def __init__(self):
        super().__init__("ws://localhost")
        self.setProtocolOptions(openHandshakeTimeout=30, utf8validateIncoming=False)
        self.members = {}
        self.seq = 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True, help="Unix socket path to listen on")
    args = parser.parse_args(argv)
    from twisted.internet import reactor

    if os.path.exists(args.socket):
        os.unlink(args.socket)
    reactor.listenUNIX(args.socket, BroadcastFactory(), backlog=4096, mode=0o660)
    print(f"ceiling listening on {args.socket}", file=sys.stderr, flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
