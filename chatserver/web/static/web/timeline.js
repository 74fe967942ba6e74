// What the client knows of one room: its messages by id, the room events it has applied (by
// seq, so a frame that arrives twice is applied once) and the contiguous cursor it resumes from.

export class Timeline {
  constructor(roomId, lastSeq) {
    this.roomId = roomId;
    this.cursor = lastSeq; // every event up to here is known (history pages fill in messages)
    this.ahead = new Set(); // seqs applied beyond a gap
    this.messages = new Map(); // id -> message
    this.historyLoaded = false;
    this.hasMore = true;
    this.readers = new Map(); // user id -> {user, seq}
  }

  // True when the event with this seq is new (and records it); false for a repeat.
  accept(seq) {
    if (seq === null || seq === undefined) return true;
    if (seq <= this.cursor || this.ahead.has(seq)) return false;
    this.ahead.add(seq);
    while (this.ahead.has(this.cursor + 1)) {
      this.cursor += 1;
      this.ahead.delete(this.cursor);
    }
    return true;
  }

  get hasGap() {
    return this.ahead.size > 0;
  }

  put(message) {
    if (!message || message.id === undefined) return;
    const known = this.messages.get(message.id);
    this.messages.set(message.id, known ? { ...known, ...message } : message);
  }

  sorted() {
    return [...this.messages.values()].filter((m) => m.seq !== undefined).sort((a, b) => a.seq - b.seq);
  }

  oldestSeq() {
    let oldest = null;
    for (const message of this.messages.values()) {
      if (message.seq !== undefined && (oldest === null || message.seq < oldest)) oldest = message.seq;
    }
    return oldest;
  }

  newestSeq() {
    let newest = 0;
    for (const message of this.messages.values()) newest = Math.max(newest, message.seq || 0);
    return newest;
  }

  react(messageId, emoji, userId, add) {
    const message = this.messages.get(messageId);
    if (!message || message.is_deleted) return;
    const reactions = (message.reactions || []).map((r) => ({ emoji: r.emoji, user_ids: [...r.user_ids] }));
    let entry = reactions.find((r) => r.emoji === emoji);
    if (add) {
      if (!entry) {
        entry = { emoji, user_ids: [] };
        reactions.push(entry);
      }
      if (!entry.user_ids.includes(userId)) entry.user_ids.push(userId);
    } else if (entry) {
      entry.user_ids = entry.user_ids.filter((id) => id !== userId);
    }
    message.reactions = reactions.filter((r) => r.user_ids.length > 0);
  }
}
