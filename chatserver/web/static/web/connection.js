// One WebSocket to /messaging/ that survives networks: heartbeats on the documented interval,
// reconnects with exponential backoff and jitter, requests answered by request_id, and a
// handler called for every server frame. Whoever uses it resumes rooms in onOpen.

import { AuthError, accessToken, distrustAccessToken } from "./auth.js";

export const HEARTBEAT_MS = 20_000; // docs/protocol.md: every 15-30 s
const HEARTBEAT_MIN_MS = 1_000;
const HEARTBEAT_TIMEOUT_MS = 10_000; // no answer to a heartbeat: the socket is dead
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 30_000;
const REQUEST_TIMEOUT_MS = 15_000;

export class RequestError extends Error {
  constructor(error) {
    super(error.detail);
    this.code = error.code;
  }
}

export class Connection {
  constructor({ onFrame, onOpen, onState, onAuthLost }) {
    this.onFrame = onFrame;
    this.onOpen = onOpen;
    this.onState = onState;
    this.onAuthLost = onAuthLost;
    this.socket = null;
    this.pending = new Map(); // request_id -> {resolve, reject, timer}
    this.nextId = 1;
    this.attempt = 0;
    this.stopped = false;
    this.retryTimer = null;
    this.heartbeatTimer = null;
    this.online = navigator.onLine;
    window.addEventListener("offline", () => {
      this.online = false;
      this.drop();
    });
    window.addEventListener("online", () => {
      this.online = true;
      this.reconnectNow();
    });
  }

  get isOpen() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN && this.ready;
  }

  async start() {
    this.stopped = false;
    if (this.socket || !this.online) return;
    this.onState("connecting");
    let token;
    try {
      token = await accessToken();
    } catch (error) {
      if (error instanceof AuthError) {
        this.onAuthLost(error.message);
        return;
      }
      this.scheduleReconnect();
      return;
    }
    if (this.stopped || this.socket) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/messaging/?token=${encodeURIComponent(token)}`);
    this.socket = socket;
    this.ready = false;
    socket.addEventListener("open", () => this.opened(socket));
    socket.addEventListener("message", (event) => this.received(socket, event));
    socket.addEventListener("close", (event) => this.closed(socket, event));
  }

  async opened(socket) {
    if (socket !== this.socket) return;
    this.ready = true;
    this.attempt = 0;
    this.heartbeat();
    try {
      await this.onOpen();
      if (socket === this.socket) this.onState("online");
    } catch {
      this.drop();
    }
  }

  // One heartbeat now, then every HEARTBEAT_MS, or at half the server's inactivity threshold
  // when that is shorter (the reply says what it is), so a slow network never costs the socket.
  async heartbeat() {
    clearTimeout(this.heartbeatTimer);
    if (!this.isOpen) return;
    const socket = this.socket;
    let interval = HEARTBEAT_MS;
    try {
      const reply = await this.request("session.heartbeat", {}, HEARTBEAT_TIMEOUT_MS);
      const threshold = reply.data.inactivity_threshold * 1000;
      if (threshold > 0) interval = Math.max(HEARTBEAT_MIN_MS, Math.min(HEARTBEAT_MS, threshold / 2));
    } catch (error) {
      if (!(error instanceof RequestError)) {
        if (socket === this.socket) this.drop();
        return;
      }
    }
    if (socket === this.socket) this.heartbeatTimer = setTimeout(() => this.heartbeat(), interval);
  }

  received(socket, event) {
    if (socket !== this.socket) return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    const waiting = frame.request_id && this.pending.get(frame.request_id);
    if (waiting) {
      this.pending.delete(frame.request_id);
      clearTimeout(waiting.timer);
      if (frame.eventType === "error") waiting.reject(new RequestError(frame.error));
      else waiting.resolve(frame);
    }
    if (frame.eventType !== "error") this.onFrame(frame, Boolean(waiting));
  }

  closed(socket, event) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.ready = false;
    clearTimeout(this.heartbeatTimer);
    for (const waiting of this.pending.values()) {
      clearTimeout(waiting.timer);
      waiting.reject(new Error("connection lost"));
    }
    this.pending.clear();
    if (this.stopped) return;
    if (event.code === 4001) {
      // Revoked, or the access token expired: reconnect with a refreshed token, or go back to
      // the login when the refresh is refused too.
      distrustAccessToken();
    }
    this.scheduleReconnect();
  }

  // Close the socket now (network gone, heartbeat unanswered); reconnecting follows.
  drop() {
    const socket = this.socket;
    if (!socket) return;
    this.closed(socket, { code: 1006 });
    try {
      socket.close();
    } catch {
      /* already closing */
    }
  }

  scheduleReconnect(delay) {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.onState(this.online ? "reconnecting" : "offline");
    if (!this.online) return; // the "online" event reconnects
    if (delay === undefined) {
      const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
      delay = ceiling / 2 + Math.random() * (ceiling / 2); // "equal jitter"
      this.attempt += 1;
    }
    this.retryTimer = setTimeout(() => this.start(), delay);
  }

  reconnectNow() {
    if (this.stopped) return; // logged out: nothing to reconnect
    clearTimeout(this.retryTimer);
    this.attempt = 0;
    if (!this.socket) this.start();
  }

  request(eventType, data = {}, timeout = REQUEST_TIMEOUT_MS) {
    if (!this.isOpen) return Promise.reject(new Error("offline"));
    const requestId = `r${this.nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        reject(new Error("timeout"));
      }, timeout);
      this.pending.set(requestId, { resolve, reject, timer });
      this.socket.send(JSON.stringify({ event_type: eventType, data, request_id: requestId }));
    });
  }

  // Fire and forget (typing, acknowledgements): dropped when offline.
  send(eventType, data = {}) {
    if (this.isOpen) this.socket.send(JSON.stringify({ event_type: eventType, data }));
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const socket = this.socket;
    this.drop();
    if (socket) socket.close(1000);
  }
}
