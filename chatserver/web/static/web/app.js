// The web chat: log in or sign up, the room list, one open conversation, and a connection that
// loses nothing (resume by seq, offline outbox with client_msg_id). Entry point of the page.

import * as auth from "./auth.js";
import { Connection, RequestError } from "./connection.js";
import { clear, dayLabel, debounce, el, linkify, randomId, timeLabel } from "./dom.js";
import { Timeline } from "./timeline.js";

const $ = (id) => document.getElementById(id);
const QUICK_REACTIONS = ["👍", "❤️", "😂"];
const TYPING_EVERY_MS = 3000;
const TYPING_SHOWN_MS = 6000;
const RESUME_DELAY_MS = 1500;
const RETRY_LATER = new Set([4006, 4029]); // internal error, rate limited
const RETRY_SEND_MS = 2000;

const state = {
  me: null, // {id, username}
  rooms: new Map(), // id -> room summary (room.list shape)
  timelines: new Map(), // id -> Timeline
  openRoom: null,
  outbox: [], // messages composed but not yet acknowledged, in order
  flushing: false,
  typing: new Map(), // room id -> Map(user id -> {user, timer})
  replyTo: null,
  editing: null,
  panelMode: null,
  presence: new Map(), // user id -> {status, last_seen}, from presence.dispatch
};

const connection = new Connection({
  onFrame: (frame) => handleFrame(frame),
  onOpen: () => resync(),
  onState: (s) => showStatus(s),
  onAuthLost: (reason) => showLogin(reason),
});

// -- log in, sign up, log out --------------------------------------------------------------

function showLogin(message = "") {
  connection.stop();
  $("chat").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("login-username").focus();
}

async function enter(action) {
  const username = $("login-username").value.trim();
  const password = $("login-password").value;
  $("login-error").textContent = "";
  try {
    await action(username, password);
  } catch (error) {
    $("login-error").textContent = error.message;
    return;
  }
  $("login-password").value = "";
  const id = Number(auth.claims()?.sub);
  if (!state.me || state.me.id !== id) forgetEverything(); // someone else: nothing of theirs
  state.me = { id, username };
  $("me").textContent = username;
  $("login").hidden = true;
  $("chat").hidden = false;
  connection.start();
}

// What one login showed and queued; a login as the same user after a lost session keeps it
// (its unsent messages go out once back), a log out or another user does not.
function forgetEverything() {
  state.rooms.clear();
  state.timelines.clear();
  state.outbox = [];
  state.openRoom = null;
  state.me = null;
  state.presence.clear();
  $("presence-hidden").checked = false;
  readSent.clear();
  $("chat").classList.remove("in-room");
  clear($("rooms"));
  clear($("messages"));
}

async function logout() {
  connection.stop();
  await auth.logout();
  forgetEverything();
  showLogin("");
}

function showStatus(s) {
  const words = { online: "", connecting: "Connecting…", reconnecting: "Reconnecting…", offline: "Offline" };
  $("status").textContent = words[s] ?? s;
}

// -- keeping in step with the server -------------------------------------------------------

function timeline(roomId, lastSeq = 0) {
  let line = state.timelines.get(roomId);
  if (!line) {
    line = new Timeline(roomId, lastSeq);
    state.timelines.set(roomId, line);
  }
  return line;
}

// On every (re)connect: replay what was missed in known rooms, refresh the list, send the outbox.
async function resync() {
  const cursors = {};
  for (const [roomId, line] of state.timelines) cursors[roomId] = line.cursor;
  if (Object.keys(cursors).length) await resume(cursors);
  await loadRooms();
  if (state.openRoom && !timeline(state.openRoom).historyLoaded) await loadHistory(state.openRoom);
  flushOutbox();
  await subscribePresence();
  await showPresenceSetting();
}

// -- presence -------------------------------------------------------------------------------

// Watch the peers of all rooms; a subscription does not follow membership changes, so it is
// renewed after every (re)connect and whenever the room list changes. Its reply and the changes
// after it arrive as presence.dispatch frames (handleFrame).
async function subscribePresence() {
  try {
    await connection.request("presence.subscribe", {});
  } catch (error) {
    // More peers than one subscription may watch (4003): watch the open room only.
    if (error instanceof RequestError && error.code === 4003 && state.openRoom) {
      await connection.request("presence.subscribe", { room_id: state.openRoom }).catch(() => {});
    }
  }
}

const subscribePresenceSoon = debounce(() => {
  if (connection.isOpen) subscribePresence();
}, 1000);

function presenceChanged(users) {
  for (const user of users) state.presence.set(user.user_id, user);
  renderRooms();
  if (state.openRoom && !$("members").hidden) renderMembers();
}

// A dot whose shape differs by status (filled, ring with a dot, hollow ring) and whose status is
// also text for screen readers and a tooltip: never colour alone.
function presenceDot(userId) {
  const known = state.presence.get(userId);
  const status = known?.status || "offline";
  const title = known?.last_seen ? `${status}, last seen ${dayLabel(known.last_seen)} ${timeLabel(known.last_seen)}` : status;
  return el(
    "span",
    { className: `presence presence-${status}`, dataset: { userId }, title },
    el("span", { className: "dot", "aria-hidden": "true" }),
    el("span", { className: "visually-hidden", text: status }),
  );
}

// The "hide presence" box shows the stored setting: a new socket asks for it (presence.hide
// without `hidden` changes nothing).
async function showPresenceSetting() {
  try {
    const reply = await connection.request("presence.hide", {});
    $("presence-hidden").checked = reply.data.hidden;
    $("presence-hidden").closest("label").hidden = false;
  } catch (error) {
    // The server runs without presence (ENABLE_PRESENCE off): nothing to hide.
    if (error instanceof RequestError && error.code === 4007) {
      $("presence-hidden").closest("label").hidden = true;
      return;
    }
    flash(`Could not read the presence setting: ${error.message}`);
  }
}

async function setPresenceHidden() {
  const box = $("presence-hidden");
  try {
    const reply = await connection.request("presence.hide", { hidden: box.checked });
    box.checked = reply.data.hidden;
  } catch (error) {
    box.checked = !box.checked;
    flash(`Presence not changed: ${error.message}`);
  }
}

const RESUME_MAX_ROOMS = 100; // per request (docs/protocol.md, Limits)

async function resume(cursors) {
  let todo = cursors;
  while (Object.keys(todo).length) {
    const entries = Object.entries(todo);
    const batch = Object.fromEntries(entries.slice(0, RESUME_MAX_ROOMS));
    const later = Object.fromEntries(entries.slice(RESUME_MAX_ROOMS));
    const reply = await connection.request("session.resume", { rooms: batch });
    const next = {};
    for (const [roomId, replay] of Object.entries(reply.data.rooms)) {
      for (const frame of replay.events) handleFrame(frame);
      if (replay.limited) next[roomId] = replay.next_after;
    }
    for (const roomId of reply.data.missing) forgetRoom(Number(roomId));
    todo = { ...later, ...next };
  }
}

const gapChecks = new Map();

function watchGap(roomId) {
  if (gapChecks.has(roomId)) return;
  gapChecks.set(
    roomId,
    setTimeout(() => {
      gapChecks.delete(roomId);
      const line = state.timelines.get(roomId);
      if (line && line.hasGap && connection.isOpen) resume({ [roomId]: line.cursor }).catch(() => {});
    }, RESUME_DELAY_MS),
  );
}

async function loadRooms() {
  let before = null;
  const seen = new Set();
  do {
    const data = before ? { limit: 100, before } : { limit: 100 };
    const reply = await connection.request("room.list", data);
    for (const room of reply.data.rooms) {
      seen.add(room.id);
      const known = state.rooms.get(room.id);
      state.rooms.set(room.id, { ...known, ...room });
      timeline(room.id, room.last_seq);
    }
    before = reply.data.has_more ? reply.data.next_before : null;
  } while (before);
  for (const roomId of [...state.rooms.keys()]) if (!seen.has(roomId)) forgetRoom(roomId);
  renderRooms();
  renderRoomHeader();
}

function forgetRoom(roomId) {
  state.rooms.delete(roomId);
  state.timelines.delete(roomId);
  if (state.openRoom === roomId) {
    state.openRoom = null;
    renderPane();
  }
  renderRooms();
}

const ROOM_CHANGES = new Set([
  "roomcreate.dispatch",
  "roomaddmembers.dispatch",
  "roomremovemembers.dispatch",
  "roomupdate.dispatch",
]);

function handleFrame(frame) {
  const { eventType, data } = frame;
  if (eventType === "roomdelete.dispatch") return forgetRoom(data.room_id);
  if (eventType === "roomexit.dispatch") return forgetRoom(data.room_id);
  if (eventType === "messagetyping.dispatch") return typingChanged(data);
  if (eventType === "readreceipt.dispatch") return receiptsChanged(data);
  if (eventType === "chat.notifications") return;
  if (eventType === "presence.dispatch") return presenceChanged(data.users);
  if (eventType === "presencesetting.dispatch") {
    $("presence-hidden").checked = data.hidden;
    return;
  }
  const roomId = data && data.room_id;
  if (roomId === undefined || data.seq === undefined) return;
  const known = state.rooms.has(roomId);
  if (data.seq === null) {
    // Not a room event (an existing one-to-one room returned by room.create).
    if (!known) refreshRoomsSoon();
    return;
  }
  // A room new to this client starts at this event: older messages come from history pages,
  // and their current state already includes earlier edits and reactions.
  const line = state.timelines.get(roomId) || timeline(roomId, data.seq - 1);
  if (!line.accept(data.seq)) return;
  if (line.hasGap) watchGap(roomId);
  if (eventType === "message.dispatch") messageArrived(roomId, data.message);
  else if (eventType === "messagemodification.dispatch") line.put(data.message);
  else if (eventType === "reaction.dispatch") line.react(data.message_id, data.emoji, data.user.id, data.action === "add");
  else if (eventType === "roomupdate.dispatch") roomUpdated(roomId, data.room);
  if (ROOM_CHANGES.has(eventType) || !known) {
    refreshRoomsSoon();
    if (eventType !== "roomupdate.dispatch") subscribePresenceSoon();
    if (state.openRoom === roomId) loadMembers(roomId);
  }
  if (state.openRoom === roomId) renderMessagesSoon();
}

function messageArrived(roomId, message) {
  const line = timeline(roomId);
  line.put(message);
  const room = state.rooms.get(roomId);
  if (room) {
    room.last_message = message;
    room.last_seq = Math.max(room.last_seq || 0, message.seq);
    room.activity = message.created_at;
    const mine = message.author && message.author.id === state.me.id;
    if (!mine && !(state.openRoom === roomId && pageVisible())) room.unread_count = (room.unread_count || 0) + 1;
    renderRooms();
  }
  if (message.client_msg_id) {
    state.outbox = state.outbox.filter((item) => item.client_msg_id !== message.client_msg_id);
  }
  if (message.author && message.author.id !== state.me.id) {
    acknowledge(roomId, message.seq);
    stopTyping(roomId, message.author.id);
  }
}

// Delivery acks and read cursors share the "read" rate bucket with heartbeats: a busy room
// must not spend it, so both go out at most once per CURSOR_FLUSH_MS, the highest seq per room.
const CURSOR_FLUSH_MS = 1000;

function cursorBatch(eventType) {
  const pending = new Map();
  let timer = null;
  const flush = () => {
    timer = null;
    if (!pending.size || !connection.isOpen) return;
    const rooms = Object.fromEntries(pending);
    pending.clear();
    if (eventType === "message.read") {
      connection.request(eventType, { rooms }).catch(() => {
        for (const roomId of Object.keys(rooms)) readSent.delete(Number(roomId));
      });
    } else {
      connection.send(eventType, { rooms });
    }
  };
  return (roomId, seq) => {
    pending.set(roomId, Math.max(seq, pending.get(roomId) || 0));
    if (!timer) timer = setTimeout(flush, CURSOR_FLUSH_MS);
  };
}

const acknowledge = cursorBatch("message.acknowledged");
const sendRead = cursorBatch("message.read");

const refreshRoomsSoon = debounce(() => {
  if (connection.isOpen) loadRooms().catch(() => {});
}, 300);

// -- the outbox: composed messages leave once, in order, and survive going offline ----------

function queueMessage(roomId, content, parentId) {
  const item = { client_msg_id: randomId(), room_id: roomId, content, created_at: new Date().toISOString() };
  if (parentId) item.parent_message_id = parentId;
  state.outbox.push(item);
  renderMessagesSoon();
  flushOutbox();
}

async function flushOutbox() {
  if (state.flushing) return;
  state.flushing = true;
  try {
    while (state.outbox.length && connection.isOpen) {
      const item = state.outbox[0];
      const { created_at: _created, failed: _failed, ...data } = item;
      try {
        const reply = await connection.request("message.send", data);
        // A resend answered with duplicate: true is already in the timeline.
        if (reply.data.message) timeline(item.room_id).put(reply.data.message);
        state.outbox = state.outbox.filter((other) => other !== item);
      } catch (error) {
        if (!(error instanceof RequestError)) break; // connection lost: retried on reconnect
        if (RETRY_LATER.has(error.code)) {
          // Rate limited, or a server failure that may have stored it: the same client_msg_id
          // again shortly (the server answers a stored one with duplicate: true).
          setTimeout(flushOutbox, RETRY_SEND_MS);
          break;
        }
        state.outbox = state.outbox.filter((other) => other !== item);
        flash(`Not sent: ${error.message}`);
      }
      renderMessagesSoon();
    }
  } finally {
    state.flushing = false;
  }
}

function flash(text) {
  $("status").textContent = text;
}

// -- the room list ------------------------------------------------------------------------

function roomTitle(room) {
  if (room.type === "direct" && room.peer) return room.peer.display_name;
  return room.name || "(unnamed)";
}

function activity(room) {
  return room.activity || room.last_message?.created_at || room.created_at || "";
}

function renderRooms() {
  const rooms = [...state.rooms.values()].sort((a, b) => (activity(a) < activity(b) ? 1 : -1));
  const list = $("rooms");
  clear(list);
  for (const room of rooms) {
    const last = room.last_message;
    const preview = last ? (last.is_deleted ? "Message deleted" : `${last.author ? last.author.display_name + ": " : ""}${last.content ?? ""}`) : "No messages yet";
    const unread = room.unread_count > 0 ? el("span", { className: "badge", text: String(room.unread_count), "aria-label": `${room.unread_count} unread` }) : null;
    list.append(
      el(
        "li",
        {},
        el(
          "button",
          { type: "button", "aria-current": state.openRoom === room.id ? "true" : "false", onclick: () => openRoom(room.id), dataset: { roomId: room.id } },
          el("span", { className: "room-name" }, room.type === "direct" && room.peer ? presenceDot(room.peer.id) : null, roomTitle(room)),
          unread || el("span"),
          el("span", { className: "room-last", text: preview }),
        ),
      ),
    );
  }
}

// -- the open room ------------------------------------------------------------------------

async function openRoom(roomId) {
  state.openRoom = roomId;
  state.replyTo = null;
  state.editing = null;
  $("chat").classList.add("in-room");
  $("members").hidden = true;
  renderPane();
  renderRooms();
  const line = timeline(roomId);
  if (!line.historyLoaded && connection.isOpen) await loadHistory(roomId);
  if (connection.isOpen) await loadMembers(roomId);
  $("compose-input").focus();
}

async function loadHistory(roomId) {
  const line = timeline(roomId);
  const reply = await connection.request("room.messages", { room_id: roomId, limit: 50 });
  for (const message of reply.data.messages) line.put(message);
  line.hasMore = reply.data.has_more;
  line.historyLoaded = true;
  renderMessages({ toBottom: true });
  const box = $("messages");
  if (box.scrollHeight <= box.clientHeight) loadOlder(); // a tall window shows no scroll bar
}

let loadingOlder = false;

async function loadOlder() {
  const roomId = state.openRoom;
  const line = roomId && timeline(roomId);
  if (!line || !line.hasMore || loadingOlder || !connection.isOpen) return;
  const oldest = line.oldestSeq();
  if (oldest === null || oldest <= 1) {
    line.hasMore = false;
    return;
  }
  loadingOlder = true;
  try {
    const reply = await connection.request("room.messages", { room_id: roomId, before: oldest, limit: 50 });
    for (const message of reply.data.messages) line.put(message);
    line.hasMore = reply.data.has_more;
    if (state.openRoom === roomId) renderMessages({ keepFromBottom: true });
  } finally {
    loadingOlder = false;
  }
}

async function loadMembers(roomId) {
  const reply = await connection.request("room.info", { room_id: roomId });
  const line = timeline(roomId);
  line.members = reply.data.members;
  for (const member of reply.data.members) {
    const known = line.readers.get(member.id);
    line.readers.set(member.id, { user: member, seq: Math.max(known ? known.seq : 0, member.last_read_seq) });
  }
  if (state.openRoom === roomId) {
    renderMembers();
    renderMessagesSoon();
  }
}

function renderPane() {
  const room = state.rooms.get(state.openRoom);
  $("settings").hidden = true;
  renderRoomHeader();
  if (!room) $("chat").classList.remove("in-room");
  renderMessages({ toBottom: true });
}

// The title, the buttons and the composer of the open room: they follow renames, role changes
// and locking as they arrive.
function renderRoomHeader() {
  const room = state.rooms.get(state.openRoom);
  $("room-title").textContent = room ? roomTitle(room) : "Pick a conversation";
  $("members-button").hidden = !room;
  $("settings-button").hidden = !canModerate(room);
  if (!canModerate(room)) $("settings").hidden = true;
  $("compose").hidden = !canSend(room);
  $("compose-closed").hidden = !room || canSend(room);
}

function pageVisible() {
  return document.visibilityState === "visible";
}

let renderQueued = false;

function renderMessagesSoon() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    renderMessages({});
  });
}

function renderMessages({ toBottom = false, keepFromBottom = false }) {
  const box = $("messages");
  const top = box.scrollTop;
  const fromBottom = box.scrollHeight - box.scrollTop;
  const atBottom = fromBottom - box.clientHeight < 40;
  clear(box);
  const roomId = state.openRoom;
  if (!roomId) return;
  const line = timeline(roomId);
  const room = state.rooms.get(roomId);
  let lastDay = null;
  const messages = line.sorted();
  for (const message of messages) {
    const day = dayLabel(message.created_at);
    if (day !== lastDay) {
      box.append(el("p", { className: "day", role: "separator", text: day }));
      lastDay = day;
    }
    box.append(renderMessage(line, room, message));
  }
  for (const item of state.outbox.filter((o) => o.room_id === roomId)) {
    box.append(
      el(
        "article",
        { className: "message mine pending", dataset: { clientMsgId: item.client_msg_id } },
        el("div", { className: "meta" }, el("span", { className: "author", text: state.me.username }), el("span", { className: "state", text: "Sending…" })),
        el("p", { className: "content" }, linkify(item.content)),
      ),
    );
  }
  const seen = seenBy(line, messages);
  if (seen) box.append(seen);
  // Follow new messages at the bottom; keep older ones put when a history page lands above.
  if (toBottom || atBottom) box.scrollTop = box.scrollHeight;
  else if (keepFromBottom) box.scrollTop = box.scrollHeight - fromBottom;
  else box.scrollTop = top;
  markRead(roomId, messages);
}

function seenBy(line, messages) {
  const last = messages[messages.length - 1];
  if (!last) return null;
  const names = [];
  for (const [userId, reader] of line.readers) {
    if (userId !== state.me.id && reader.seq >= last.seq) names.push(reader.user.display_name);
  }
  return names.length ? el("p", { className: "seen", text: `Seen by ${names.join(", ")}` }) : null;
}

function canModerate(room) {
  return room && (room.role === "owner" || room.role === "admin") && room.type !== "direct";
}

function renderMessage(line, room, message) {
  const mine = message.author && message.author.id === state.me.id;
  const classes = ["message"];
  if (mine) classes.push("mine");
  if (message.is_deleted) classes.push("deleted");
  const parent = message.parent_message_id ? line.messages.get(message.parent_message_id) : null;
  const reactions = el(
    "div",
    { className: "reactions" },
    (message.reactions || []).map((r) =>
      el("button", {
        type: "button",
        "aria-pressed": r.user_ids.includes(state.me.id) ? "true" : "false",
        "aria-label": `${r.emoji} ${r.user_ids.length}`,
        text: `${r.emoji} ${r.user_ids.length}`,
        onclick: () => react(message, r.emoji),
      }),
    ),
  );
  const actions = message.is_deleted
    ? null
    : el(
        "div",
        { className: "actions" },
        QUICK_REACTIONS.map((emoji) => el("button", { type: "button", "aria-label": `React ${emoji}`, text: emoji, onclick: () => react(message, emoji) })),
        el("button", { type: "button", text: "Reply", onclick: () => startReply(message) }),
        el("button", { type: "button", text: "Forward", onclick: () => chooseForward(message) }),
        mine ? el("button", { type: "button", text: "Edit", onclick: () => startEdit(message) }) : null,
        mine || canModerate(room) ? el("button", { type: "button", text: "Delete", onclick: () => removeMessage(message) }) : null,
      );
  return el(
    "article",
    { className: classes.join(" "), dataset: { seq: message.seq, messageId: message.id } },
    el(
      "div",
      { className: "meta" },
      el("span", { className: "author", text: message.author ? message.author.display_name : "system" }),
      el("time", { datetime: message.created_at, text: timeLabel(message.created_at) }),
      message.is_edited && !message.is_deleted ? el("span", { className: "edited", text: "(edited)" }) : null,
    ),
    message.forwarded_from_id && !message.is_deleted ? el("p", { className: "forwarded", text: "Forwarded" }) : null,
    parent ? el("p", { className: "quote", text: `${parent.author ? parent.author.display_name : ""}: ${parent.content ?? "(deleted)"}` }) : null,
    el("p", { className: "content" }, message.is_deleted ? "Message deleted" : linkify(message.content ?? "")),
    reactions,
    actions,
  );
}

const readSent = new Map();

function markRead(roomId, messages) {
  if (!pageVisible() || !connection.isOpen || !messages.length) return;
  const newest = messages[messages.length - 1].seq;
  const room = state.rooms.get(roomId);
  if (room && room.unread_count) {
    room.unread_count = 0;
    renderRooms();
  }
  if ((readSent.get(roomId) || 0) >= newest) return;
  readSent.set(roomId, newest);
  sendRead(roomId, newest);
}

function receiptsChanged(data) {
  for (const receipt of data.receipts) {
    const line = state.timelines.get(receipt.room_id);
    if (!line) continue;
    const known = line.readers.get(data.user.id);
    line.readers.set(data.user.id, { user: data.user, seq: Math.max(known ? known.seq : 0, receipt.last_read_seq) });
    if (state.openRoom === receipt.room_id) renderMessagesSoon();
  }
}

// -- typing -------------------------------------------------------------------------------

function typingChanged(data) {
  if (data.user.id === state.me.id) return;
  if (data.state === "stop") return stopTyping(data.room_id, data.user.id);
  let users = state.typing.get(data.room_id);
  if (!users) state.typing.set(data.room_id, (users = new Map()));
  const known = users.get(data.user.id);
  if (known) clearTimeout(known.timer);
  users.set(data.user.id, { user: data.user, timer: setTimeout(() => stopTyping(data.room_id, data.user.id), TYPING_SHOWN_MS) });
  renderTyping();
}

function stopTyping(roomId, userId) {
  const users = state.typing.get(roomId);
  if (users && users.has(userId)) {
    clearTimeout(users.get(userId).timer);
    users.delete(userId);
    renderTyping();
  }
}

function renderTyping() {
  const users = state.typing.get(state.openRoom);
  const names = users ? [...users.values()].map((t) => t.user.display_name) : [];
  $("typing").textContent = names.length ? `${names.join(", ")} ${names.length > 1 ? "are" : "is"} typing…` : "";
}

let lastTypingSent = 0;

function typed() {
  const now = Date.now();
  if (state.openRoom && !state.editing && now - lastTypingSent > TYPING_EVERY_MS) {
    lastTypingSent = now;
    connection.send("message.typing", { room_id: state.openRoom, state: "start" });
  }
}

// -- composing ----------------------------------------------------------------------------

function setContext(text) {
  $("compose-context").hidden = !text;
  $("compose-context-text").textContent = text || "";
}

function startReply(message) {
  state.replyTo = message;
  state.editing = null;
  setContext(`Replying to ${message.author ? message.author.display_name : "message"}: ${message.content}`);
  $("compose-input").focus();
}

function startEdit(message) {
  state.editing = message;
  state.replyTo = null;
  setContext("Editing your message");
  $("compose-input").value = message.content;
  $("compose-input").focus();
}

function cancelContext() {
  if (state.editing) $("compose-input").value = "";
  state.replyTo = null;
  state.editing = null;
  setContext(null);
}

async function submit() {
  const input = $("compose-input");
  const content = input.value;
  const roomId = state.openRoom;
  if (!roomId || !content.trim()) return;
  if (state.editing) {
    const message = state.editing;
    try {
      await connection.request("message.modify", { message_id: message.id, action: "update", content });
    } catch (error) {
      flash(`Not edited: ${error.message}`);
      return;
    }
  } else {
    queueMessage(roomId, content, state.replyTo && state.replyTo.id);
    lastTypingSent = 0;
    connection.send("message.typing", { room_id: roomId, state: "stop" });
  }
  input.value = "";
  cancelContext();
}

async function react(message, emoji) {
  const entry = (message.reactions || []).find((r) => r.emoji === emoji);
  const action = entry && entry.user_ids.includes(state.me.id) ? "remove" : "add";
  try {
    await connection.request("message.react", { message_id: message.id, action, emoji });
  } catch (error) {
    flash(`Reaction failed: ${error.message}`);
  }
}

async function removeMessage(message) {
  try {
    await connection.request("message.modify", { message_id: message.id, action: "delete" });
  } catch (error) {
    flash(`Not deleted: ${error.message}`);
  }
}

// -- room settings (owners and admins) ------------------------------------------------------

function roomUpdated(roomId, changed) {
  const room = state.rooms.get(roomId);
  if (!room || !changed) return;
  const { role: _role, ...fields } = changed; // the role is this user's, from room.list
  Object.assign(room, fields);
  renderRooms();
  if (state.openRoom === roomId) renderRoomHeader();
}

function openSettings() {
  const room = state.rooms.get(state.openRoom);
  const box = $("settings");
  box.hidden = !box.hidden;
  if (box.hidden || !room) return;
  $("settings-name").value = room.name || "";
  $("settings-description").value = room.description || "";
  $("settings-locked").checked = Boolean(room.locked);
  $("settings-locked-label").hidden = room.type !== "group";
  $("settings-delete").hidden = room.role !== "owner";
  $("settings-delete-confirm").hidden = true;
  $("settings-name").focus();
}

async function saveSettings() {
  const room = state.rooms.get(state.openRoom);
  if (!room) return;
  const data = { room_id: room.id, action: "update" };
  const name = $("settings-name").value.trim();
  const description = $("settings-description").value;
  if (name && name !== room.name) data.name = name;
  if (description !== (room.description || "")) data.description = description;
  if (room.type === "group" && $("settings-locked").checked !== Boolean(room.locked)) data.locked = $("settings-locked").checked;
  if (Object.keys(data).length === 2) {
    flash("Nothing to change");
    return;
  }
  try {
    const reply = await connection.request("room.modify", data);
    roomUpdated(room.id, reply.data.room);
    $("settings").hidden = true;
    flash("Room settings saved");
  } catch (error) {
    flash(`Not saved: ${error.message}`);
  }
}

async function deleteRoom() {
  const roomId = state.openRoom;
  if (!roomId) return;
  try {
    await connection.request("room.modify", { room_id: roomId, action: "delete" });
    forgetRoom(roomId);
  } catch (error) {
    flash(`Not deleted: ${error.message}`);
  }
}

async function setAdmin(roomId, userId, admin) {
  try {
    await connection.request("room.modify", { room_id: roomId, action: admin ? "add_admin" : "remove_admin", members: [userId] });
  } catch (error) {
    flash(`Role not changed: ${error.message}`);
  }
}

// -- forwarding -----------------------------------------------------------------------------

// Whether this user may write in the room (docs/protocol.md, Roles and permissions): channel
// subscribers and the members of a locked group may not.
function canSend(room) {
  if (!room) return false;
  if (room.type === "direct" || room.role === "owner" || room.role === "admin") return true;
  return room.type === "group" && !room.locked;
}

// A dialog listing the user's other rooms they may write in; picking one forwards the message
// there (message.send with forwarded_from_id: the server copies the content).
function chooseForward(message) {
  const list = $("forward-rooms");
  clear(list);
  const rooms = [...state.rooms.values()].filter((room) => room.id !== message.room_id && canSend(room));
  for (const room of rooms) {
    list.append(el("li", {}, el("button", { type: "button", className: "secondary", text: roomTitle(room), onclick: () => forward(message, room) })));
  }
  if (!rooms.length) list.append(el("li", { text: "No other room to forward to." }));
  $("forward-dialog").showModal();
}

async function forward(message, room) {
  $("forward-dialog").close();
  try {
    const reply = await connection.request("message.send", { room_id: room.id, forwarded_from_id: message.id, client_msg_id: randomId() });
    if (reply.data.message) timeline(room.id).put(reply.data.message);
    flash(`Forwarded to ${roomTitle(room)}`);
  } catch (error) {
    flash(`Not forwarded: ${error.message}`);
  }
}

// -- members --------------------------------------------------------------------------------

function renderMembers() {
  const roomId = state.openRoom;
  const room = state.rooms.get(roomId);
  const line = timeline(roomId);
  const list = $("member-list");
  clear(list);
  for (const member of line.members || []) {
    const removable = canModerate(room) && member.id !== state.me.id && member.role !== "owner";
    const promotable = canModerate(room) && room.role === "owner" && member.id !== state.me.id && member.role !== "owner";
    list.append(
      el(
        "li",
        {},
        el("span", {}, member.id === state.me.id ? null : presenceDot(member.id), `${member.display_name} (@${member.username}) · ${member.role}`),
        promotable && member.role === "admin"
          ? el("button", { type: "button", className: "secondary", text: "Revoke admin", "aria-label": `Revoke admin from ${member.username}`, onclick: () => setAdmin(roomId, member.id, false) })
          : null,
        promotable && member.role === "member"
          ? el("button", { type: "button", className: "secondary", text: "Make admin", "aria-label": `Make ${member.username} admin`, onclick: () => setAdmin(roomId, member.id, true) })
          : null,
        removable ? el("button", { type: "button", className: "secondary", text: "Remove", "aria-label": `Remove ${member.username}`, onclick: () => removeMember(roomId, member.id) }) : null,
      ),
    );
  }
  $("add-member-form").hidden = !canModerate(room);
}

async function removeMember(roomId, userId) {
  try {
    await connection.request("room.remove_members", { room_id: roomId, members: [userId] });
  } catch (error) {
    flash(`Not removed: ${error.message}`);
  }
}

async function searchUsers(query) {
  if (query.trim().length < 2 || !connection.isOpen) return [];
  const reply = await connection.request("user.search", { query });
  return reply.data.users;
}

function userResults(listId, users, label, act) {
  const list = $(listId);
  clear(list);
  for (const user of users) {
    list.append(
      el(
        "li",
        {},
        el("span", { text: `${user.display_name} (@${user.username})` }),
        el("button", { type: "button", text: label, "aria-label": `${label} ${user.username}`, onclick: () => act(user) }),
      ),
    );
  }
}

const addMemberSearch = debounce(async () => {
  const users = await searchUsers($("add-member-query").value).catch(() => []);
  userResults("add-member-results", users, "Add", async (user) => {
    try {
      await connection.request("room.add_members", { room_id: state.openRoom, members: [user.id] });
      $("add-member-query").value = "";
      clear($("add-member-results"));
    } catch (error) {
      flash(`Not added: ${error.message}`);
    }
  });
}, 250);

// -- new chats and discovery ---------------------------------------------------------------

function openPanel(mode) {
  state.panelMode = mode;
  $("panel").hidden = false;
  $("create-fields").hidden = mode !== "new";
  $("panel-label").textContent = mode === "new" ? "Find people (at least 2 letters)" : "Find public rooms by name";
  $("panel-query").value = "";
  clear($("panel-results"));
  $("panel-query").focus();
  if (mode === "discover") panelSearch();
}

function closePanel() {
  $("panel").hidden = true;
  state.panelMode = null;
}

const panelSearch = debounce(async () => {
  const query = $("panel-query").value;
  if (state.panelMode === "new") {
    const users = await searchUsers(query).catch(() => []);
    userResults("panel-results", users, "Chat", startDirect);
  } else if (state.panelMode === "discover" && connection.isOpen) {
    const reply = await connection.request("room.discover", { query }).catch(() => null);
    if (reply) discoverResults(reply.data.rooms);
  }
}, 250);

function discoverResults(rooms) {
  const list = $("panel-results");
  clear(list);
  for (const room of rooms) {
    const label = room.is_member ? "Open" : "Join";
    list.append(
      el(
        "li",
        {},
        el("span", { text: `${room.name} · ${room.member_count} member${room.member_count === 1 ? "" : "s"}` }),
        el("button", { type: "button", text: label, "aria-label": `${label} ${room.name}`, onclick: () => joinRoom(room) }),
      ),
    );
  }
  if (!rooms.length) list.append(el("li", { text: "No public rooms found." }));
}

async function joinRoom(room) {
  try {
    if (!room.is_member) await connection.request("room.join", { room_id: room.id });
    await loadRooms();
    closePanel();
    openRoom(room.id);
  } catch (error) {
    flash(`Could not join: ${error.message}`);
  }
}

async function startDirect(user) {
  try {
    const reply = await connection.request("room.create", { type: "direct", members: [user.id] });
    await loadRooms();
    closePanel();
    openRoom(reply.data.room.id);
  } catch (error) {
    flash(`Could not open a chat: ${error.message}`);
  }
}

async function createRoom() {
  const name = $("create-name").value.trim();
  if (!name) {
    $("create-name").focus();
    return;
  }
  const data = { type: $("create-type").value, name, is_public: $("create-public").checked };
  try {
    const reply = await connection.request("room.create", data);
    await loadRooms();
    closePanel();
    $("create-name").value = "";
    openRoom(reply.data.room.id);
  } catch (error) {
    flash(`Could not create: ${error.message}`);
  }
}

// -- wiring -------------------------------------------------------------------------------

function wire() {
  if (document.body.dataset.allowSignup !== "1") $("signup-button").hidden = true;
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    enter(auth.login);
  });
  $("signup-button").addEventListener("click", () => enter(auth.signup));
  $("logout-button").addEventListener("click", logout);
  $("presence-hidden").addEventListener("change", setPresenceHidden);
  $("new-chat-button").addEventListener("click", () => openPanel("new"));
  $("discover-button").addEventListener("click", () => openPanel("discover"));
  $("panel-close").addEventListener("click", closePanel);
  $("panel-query").addEventListener("input", panelSearch);
  $("panel-form").addEventListener("submit", (event) => event.preventDefault());
  $("create-button").addEventListener("click", createRoom);
  $("back-button").addEventListener("click", () => {
    state.openRoom = null;
    renderPane();
    renderRooms();
  });
  $("members-button").addEventListener("click", () => {
    $("members").hidden = !$("members").hidden;
    if (!$("members").hidden) renderMembers();
  });
  $("add-member-query").addEventListener("input", addMemberSearch);
  $("settings-button").addEventListener("click", openSettings);
  $("settings-form").addEventListener("submit", (event) => {
    event.preventDefault();
    saveSettings();
  });
  $("settings-delete").addEventListener("click", () => {
    $("settings-delete-confirm").hidden = false;
    $("settings-delete-confirm").focus();
  });
  $("settings-delete-confirm").addEventListener("click", deleteRoom);
  $("add-member-form").addEventListener("submit", (event) => event.preventDefault());
  $("compose").addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  const input = $("compose-input");
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    } else if (event.key === "Escape") {
      cancelContext();
    }
  });
  input.addEventListener("input", typed);
  $("compose-cancel").addEventListener("click", cancelContext);
  $("forward-cancel").addEventListener("click", () => $("forward-dialog").close());
  $("messages").addEventListener("scroll", () => {
    if ($("messages").scrollTop < 80) loadOlder();
  });
  document.addEventListener("visibilitychange", () => {
    if (pageVisible() && state.openRoom) renderMessagesSoon();
  });
  showLogin("");
}

wire();
