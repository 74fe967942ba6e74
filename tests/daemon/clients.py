"""WebSocket client helpers for the end-to-end and fault tests: connect, request, read events."""

import asyncio
import json
import time

import websockets

ORIGIN = "http://localhost"


def unix_client(path, token, **kwargs):
    return websockets.unix_connect(
        str(path), f"ws://localhost/messaging/?token={token}", origin=ORIGIN, **kwargs
    )


def tcp_client(port, token, **kwargs):
    return websockets.connect(
        f"ws://127.0.0.1:{port}/messaging/?token={token}", origin=ORIGIN, **kwargs
    )


_backlogs = {}


async def _next_frame(ws, timeout):
    backlog = _backlogs.setdefault(id(ws), [])
    if backlog:
        return backlog.pop(0)
    frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return frame


async def request(ws, event_type, data=None, request_id=None):
    """Send one event and return the reply carrying its request_id; other frames are kept."""
    request_id = request_id or f"{event_type}-{time.monotonic_ns()}"
    await ws.send(
        json.dumps({"event_type": event_type, "data": data or {}, "request_id": request_id})
    )
    skipped = []
    try:
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame.get("request_id") == request_id:
                return frame
            skipped.append(frame)
    finally:
        _backlogs.setdefault(id(ws), []).extend(skipped)


async def next_event(ws, event_type, timeout=10):
    while True:
        frame = await _next_frame(ws, timeout)
        if frame.get("eventType") == event_type:
            return frame


async def closed_code(ws, timeout=15):
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
