// The live log viewer: a virtual list with a fixed row height.
//
// Entries live in parallel arrays (never in the DOM). A filter pass turns them into
// display rows — two integer arrays: which entry, and which line of its message (-1: the
// "N more lines" fold of a long tool output). The scroll container holds one spacer as tall
// as all rows; only the rows in view (plus a few above and below) exist as elements, a
// fixed pool moved with one transform and refilled on scroll. 200,000 entries cost a few
// arrays and about sixty DOM nodes.

import { parseAnsi, stripAnsi } from "./ansi.js";
import { h, icon } from "./dom.js";

const STREAMS = ["stdout", "stderr", "system", "test", "setup"];
const STREAM_SHORT = ["out", "err", "sys", "tst", "set"];
const KINDS = ["text", "tool_use", "tool_result", "thinking", "result", "error", "raw", "status"];
const K_TOOL_USE = KINDS.indexOf("tool_use");
const K_TOOL_RESULT = KINDS.indexOf("tool_result");
const K_STATUS = KINDS.indexOf("status");
const K_NONE = KINDS.indexOf("raw"); // entries without a kind filter as "raw", like the server

const OVERSCAN = 8;
export const FOLD_LINES = 8;
const LEVEL_INFO = 0;
const LEVEL_WARNING = 1;
const LEVEL_ERROR = 2;

export class LogView {
  constructor(root, { onSelect } = {}) {
    this.root = root;
    this.onSelect = onSelect || (() => {});
    // Entries, column by column.
    this.seq = [];
    this.ts = [];
    this.stream = [];
    this.kind = [];
    this.level = [];
    this.msg = [];
    this.nlines = [];
    this.lower = null; // lower-cased plain text, built on the first keyword filter
    this.splitCache = new Map();
    // Display rows.
    this.rowE = [];
    this.rowL = [];
    this.built = 0; // entries the rows reflect
    this.owner = -1; // tool_use entry whose results follow (carried across appends)
    this.version = 0;
    // State.
    this.filter = { streams: new Set(), kinds: new Set(), level: LEVEL_INFO, q: "", onlyMatches: true };
    this.collapseAll = false;
    this.toggled = new Set();
    this.unfolded = new Set();
    this.follow = true;
    this.selected = -1; // entry index
    this.userIntent = 0;
    this.onFollowChange = () => {};
    this.build();
  }

  build() {
    this.viewport = h("div", {
      class: "log-viewport",
      tabindex: "0",
      role: "region",
      "aria-label": "Log lines",
    });
    this.spacer = h("div", { class: "log-spacer" });
    this.rows = h("div", { class: "log-rows", role: "list" });
    this.spacer.append(this.rows);
    this.viewport.append(this.spacer);
    this.empty = h("p", { class: "log-empty", hidden: true }, "No lines match.");
    this.root.append(this.viewport, this.empty);
    this.rowHeight = this.measure();
    this.pool = [];
    this.viewport.addEventListener("scroll", () => this.onScroll(), { passive: true });
    for (const type of ["wheel", "touchstart", "pointerdown", "keydown"]) {
      this.viewport.addEventListener(type, () => (this.userIntent = performance.now()), {
        passive: true,
      });
    }
    this.rows.addEventListener("click", (event) => this.onClick(event));
    new ResizeObserver(() => this.render()).observe(this.viewport);
  }

  measure() {
    const probe = h("div", { class: "log-row" }, h("span", { class: "msg" }, "Mg"));
    this.rows.append(probe);
    const height = probe.getBoundingClientRect().height || 20;
    probe.remove();
    return height;
  }

  get size() {
    return this.seq.length;
  }

  get nextSeq() {
    return this.seq.length ? this.seq[this.seq.length - 1] + 1 : 0;
  }

  /** Add entries (API shape); ones already held are skipped. Returns how many were new. */
  append(entries) {
    let added = 0;
    let next = this.nextSeq;
    for (const e of entries) {
      if (e.seq < next) continue;
      const kind = e.kind ? KINDS.indexOf(e.kind) : -1;
      const streamCode = Math.max(0, STREAMS.indexOf(e.stream));
      const message = e.message || "";
      let nl = 1;
      for (let p = message.indexOf("\n"); p !== -1; p = message.indexOf("\n", p + 1)) nl += 1;
      this.seq.push(e.seq);
      this.ts.push(e.timestamp || "");
      this.stream.push(streamCode);
      this.kind.push(kind);
      this.level.push(levelOf(streamCode, kind, e.status, message));
      this.msg.push(message);
      this.nlines.push(nl);
      if (this.lower) this.lower.push(stripAnsi(message).toLowerCase());
      next = e.seq + 1;
      added += 1;
    }
    if (added) {
      this.extend();
      this.render();
      if (this.follow) this.toBottom();
    }
    return added;
  }

  /** Rows for entries not yet built, carrying the tool-call group across calls. */
  extend() {
    const { rowE, rowL } = this;
    const q = this.filter.q;
    if (q && !this.lower) this.lower = this.msg.map((m) => stripAnsi(m).toLowerCase());
    for (let i = this.built; i < this.seq.length; i += 1) {
      const k = this.kind[i];
      if (k === K_TOOL_USE) this.owner = i;
      else if (k !== K_TOOL_RESULT) this.owner = -1;
      if (k === K_TOOL_RESULT && this.owner >= 0 && this.isCollapsed(this.owner)) continue;
      if (!this.passes(i)) continue;
      const nl = this.nlines[i];
      const shown = k === K_TOOL_RESULT && !this.unfolded.has(i) ? Math.min(nl, FOLD_LINES) : nl;
      for (let l = 0; l < shown; l += 1) {
        rowE.push(i);
        rowL.push(l);
      }
      if (shown < nl) {
        rowE.push(i);
        rowL.push(-1);
      }
    }
    this.built = this.seq.length;
    this.spacer.style.height = `${rowE.length * this.rowHeight}px`;
    this.empty.hidden = rowE.length > 0 || this.seq.length === 0;
  }

  isCollapsed(entry) {
    return this.collapseAll !== this.toggled.has(entry);
  }

  passes(i) {
    const f = this.filter;
    if (this.kind[i] === K_STATUS) return !f.q || !f.onlyMatches || this.lower[i].includes(f.q);
    if (f.streams.size && !f.streams.has(STREAMS[this.stream[i]])) return false;
    if (f.kinds.size && !f.kinds.has(KINDS[this.kind[i] < 0 ? K_NONE : this.kind[i]])) return false;
    if (this.level[i] < f.level) return false;
    if (f.q && f.onlyMatches && !this.lower[i].includes(f.q)) return false;
    return true;
  }

  /** Rebuild every row (after a filter or fold change), keeping the line in view. */
  rebuild() {
    const anchor = this.topEntry();
    this.rowE = [];
    this.rowL = [];
    this.built = 0;
    this.owner = -1;
    this.version += 1;
    this.extend();
    if (this.follow) this.toBottom();
    else if (anchor >= 0) this.scrollToEntry(anchor, { align: "top", select: false });
    this.render();
  }

  setFilter({ streams, kinds, level, q, onlyMatches }) {
    const f = this.filter;
    if (streams) f.streams = new Set(streams);
    if (kinds) f.kinds = new Set(kinds);
    if (level !== undefined) f.level = { info: 0, warning: 1, error: 2 }[level] || 0;
    if (q !== undefined) f.q = q.trim().toLowerCase();
    if (onlyMatches !== undefined) f.onlyMatches = onlyMatches;
    this.rebuild();
  }

  setCollapseAll(on) {
    this.collapseAll = on;
    this.toggled.clear();
    this.rebuild();
  }

  setFollow(on) {
    this.follow = on;
    this.onFollowChange(on);
    if (on) this.toBottom();
  }

  /** How many rows are displayed (for tests and the status line). */
  get rowCount() {
    return this.rowE.length;
  }

  topEntry() {
    const first = Math.floor(this.viewport.scrollTop / this.rowHeight);
    return first < this.rowE.length ? this.rowE[first] : -1;
  }

  toBottom() {
    this.viewport.scrollTop = this.viewport.scrollHeight;
    this.render();
  }

  onScroll() {
    this.render();
    const v = this.viewport;
    const atBottom = v.scrollTop + v.clientHeight >= v.scrollHeight - this.rowHeight;
    const byUser = performance.now() - this.userIntent < 1500;
    if (byUser && atBottom !== this.follow) {
      this.follow = atBottom;
      this.onFollowChange(atBottom);
    }
  }

  /** Fill the pool's rows with the display rows in view. */
  render() {
    const v = this.viewport;
    const total = this.rowE.length;
    const first = Math.max(0, Math.floor(v.scrollTop / this.rowHeight) - OVERSCAN);
    const count = Math.min(total - first, Math.ceil(v.clientHeight / this.rowHeight) + 2 * OVERSCAN);
    while (this.pool.length < count) {
      const el = h("div", { class: "log-row", role: "listitem" });
      this.pool.push(el);
      this.rows.append(el);
    }
    this.rows.style.transform = `translateY(${first * this.rowHeight}px)`;
    for (let j = 0; j < this.pool.length; j += 1) {
      const el = this.pool[j];
      if (j >= count) {
        el.hidden = true;
        el.dataset.key = "";
        continue;
      }
      el.hidden = false;
      const r = first + j;
      const key = `${this.version}:${r}:${this.rowE[r]}:${this.rowL[r]}:${this.selected}`;
      if (el.dataset.key === key) continue;
      el.dataset.key = key;
      this.fillRow(el, r);
    }
  }

  fillRow(el, r) {
    const i = this.rowE[r];
    const line = this.rowL[r];
    const k = this.kind[i];
    const seq = this.seq[i];
    const stream = STREAMS[this.stream[i]];
    const cls = ["log-row", `stream-${stream}`];
    if (k >= 0) cls.push(`kind-${KINDS[k]}`);
    if (this.level[i] === LEVEL_ERROR) cls.push("level-error");
    else if (this.level[i] === LEVEL_WARNING) cls.push("level-warning");
    if (line > 0 || line === -1) cls.push("continued");
    if (i === this.selected) cls.push("selected");
    el.className = cls.join(" ");
    el.dataset.row = String(r);
    el.dataset.seq = String(seq);
    if (line === 0) {
      el.id = `row-seq-${seq}`;
    } else {
      el.removeAttribute("id");
    }
    const gutter =
      line === 0
        ? h("a", { class: "ln", href: `#seq-${seq}`, title: "Copy a link to this line" }, String(seq))
        : h("span", { class: "ln" });
    const time = line === 0 ? shortTime(this.ts[i]) : "";
    const parts = [gutter, h("span", { class: "ts" }, time), h("span", { class: "st" }, line === 0 ? STREAM_SHORT[this.stream[i]] : "")];
    if (line === -1) {
      const more = this.nlines[i] - FOLD_LINES;
      parts.push(
        h("button", { class: "fold-more", type: "button", dataset: { entry: String(i) } }, `… ${more} more line${more === 1 ? "" : "s"} — show all`),
      );
    } else {
      if (k === K_TOOL_USE && line === 0) {
        const collapsed = this.isCollapsed(i);
        const toggle = h(
          "button",
          {
            class: `toggle${collapsed ? " collapsed" : ""}`,
            type: "button",
            "aria-expanded": String(!collapsed),
            "aria-label": collapsed ? "Show tool output" : "Hide tool output",
            dataset: { entry: String(i) },
          },
          icon("chevron"),
        );
        parts.push(toggle);
      }
      parts.push(this.messageSpan(i, line));
    }
    el.replaceChildren(...parts);
  }

  messageSpan(i, line) {
    const text = this.nlines[i] === 1 ? this.msg[i] : this.lineOf(i, line);
    const span = h("span", { class: "msg" });
    const q = this.filter.q;
    for (const seg of parseAnsi(text)) {
      const target = seg.cls ? h("span", { class: seg.cls }) : span;
      highlight(target, seg.text, q);
      if (target !== span) span.append(target);
    }
    return span;
  }

  lineOf(i, line) {
    let lines = this.splitCache.get(i);
    if (!lines) {
      lines = this.msg[i].split("\n");
      if (this.splitCache.size > 500) this.splitCache.clear();
      this.splitCache.set(i, lines);
    }
    return lines[line] || "";
  }

  onClick(event) {
    const target = event.target.closest("a.ln, button.toggle, button.fold-more, .log-row");
    if (!target) return;
    const entry = Number(target.dataset.entry);
    if (target.matches("button.toggle")) {
      if (this.toggled.has(entry)) this.toggled.delete(entry);
      else this.toggled.add(entry);
      this.rebuildKeeping(entry);
    } else if (target.matches("button.fold-more")) {
      this.unfolded.add(entry);
      this.rebuildKeeping(entry);
    } else if (target.matches("a.ln")) {
      event.preventDefault();
      const row = target.closest(".log-row");
      this.permalink(Number(row.dataset.seq));
    } else {
      this.select(this.rowE[Number(target.dataset.row)]);
    }
  }

  rebuildKeeping(entry) {
    const follow = this.follow;
    this.follow = false;
    const offset = this.rowOf(entry) * this.rowHeight - this.viewport.scrollTop;
    this.rowE = [];
    this.rowL = [];
    this.built = 0;
    this.owner = -1;
    this.version += 1;
    this.extend();
    this.viewport.scrollTop = this.rowOf(entry) * this.rowHeight - offset;
    this.follow = follow && this.viewport.scrollTop + this.viewport.clientHeight >= this.viewport.scrollHeight - this.rowHeight;
    this.render();
  }

  /** Put `#seq-N` in the address bar and the full URL on the clipboard. */
  async permalink(seq) {
    history.replaceState(null, "", `#seq-${seq}`);
    this.select(this.entryOf(seq));
    const url = location.href;
    try {
      await navigator.clipboard.writeText(url);
      this.root.dispatchEvent(new CustomEvent("log:copied", { detail: { seq, url } }));
    } catch (err) {
      this.root.dispatchEvent(new CustomEvent("log:copied", { detail: { seq, url, failed: true } }));
    }
  }

  select(entry) {
    if (entry < 0 || entry >= this.size) return;
    this.selected = entry;
    this.render();
    this.onSelect({
      seq: this.seq[entry],
      timestamp: this.ts[entry],
      stream: STREAMS[this.stream[entry]],
      kind: this.kind[entry] >= 0 ? KINDS[this.kind[entry]] : null,
      message: stripAnsi(this.msg[entry]),
    });
  }

  /** Entry index of `seq`, or -1 (binary search: seqs ascend). */
  entryOf(seq) {
    let lo = 0;
    let hi = this.seq.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.seq[mid] === seq) return mid;
      if (this.seq[mid] < seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** First display row of entry `i`, or -1 when it is filtered out (rowE ascends). */
  rowOf(i) {
    let lo = 0;
    let hi = this.rowE.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.rowE[mid] < i) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.rowE.length && this.rowE[lo] === i ? lo : -1;
  }

  /** Scroll entry `i` into view; false when no row shows it (filtered out). */
  scrollToEntry(i, { align = "center", select = true } = {}) {
    let row = this.rowOf(i);
    if (row < 0 && this.kind[i] === K_TOOL_RESULT) {
      // Inside a collapsed tool call: open it.
      let o = i;
      while (o > 0 && this.kind[o] === K_TOOL_RESULT) o -= 1;
      if (this.kind[o] === K_TOOL_USE && this.isCollapsed(o)) {
        if (this.toggled.has(o)) this.toggled.delete(o);
        else this.toggled.add(o);
        this.rebuild();
        row = this.rowOf(i);
      }
    }
    if (row < 0) return false;
    if (this.follow) this.setFollow(false);
    const v = this.viewport;
    const top = row * this.rowHeight;
    v.scrollTop = align === "top" ? top : Math.max(0, top - v.clientHeight / 2 + this.rowHeight / 2);
    if (select) this.select(i);
    this.render();
    return true;
  }

  scrollToSeq(seq) {
    const i = this.entryOf(seq);
    return i >= 0 && this.scrollToEntry(i);
  }

  /** The first error line shown by the current filter; false when there is none. */
  firstError() {
    for (let r = 0; r < this.rowE.length; r += 1) {
      const i = this.rowE[r];
      if (this.level[i] === LEVEL_ERROR) return this.scrollToEntry(i);
    }
    return false;
  }

  /** How many entries match the keyword (for the filter's status line). */
  matchCount() {
    if (!this.filter.q || !this.lower) return 0;
    let n = 0;
    for (let i = 0; i < this.lower.length; i += 1) if (this.lower[i].includes(this.filter.q)) n += 1;
    return n;
  }
}

function levelOf(stream, kind, status, message) {
  if (stream === 1 || KINDS[kind] === "error" || status === "failed") return LEVEL_ERROR;
  if (message.length < 4096 ? message.toLowerCase().includes("warning") : /warning/i.test(message)) {
    return LEVEL_WARNING;
  }
  return LEVEL_INFO;
}

function shortTime(iso) {
  // "2026-11-25T05:30:01.123Z" → "05:30:01.123" (UTC, as stored)
  const t = iso.indexOf("T");
  return t === -1 ? iso : iso.slice(t + 1, t + 13);
}

/** Append `text` to `el`, wrapping case-insensitive matches of `q` in <mark>. */
function highlight(el, text, q) {
  if (!q) {
    el.append(text);
    return;
  }
  const lower = text.toLowerCase();
  let at = 0;
  for (let p = lower.indexOf(q); p !== -1; p = lower.indexOf(q, p + q.length)) {
    if (p > at) el.append(text.slice(at, p));
    el.append(h("mark", {}, text.slice(p, p + q.length)));
    at = p + q.length;
  }
  if (at < text.length) el.append(text.slice(at));
}
