// A small, safe Markdown renderer for plans. It never parses HTML: it builds DOM nodes,
// and every piece of the source ends up in a text node, so `<script>` in a plan is shown
// as text. Links are kept only for http(s) URLs. Supported: headings, paragraphs, lists
// (bullets, numbers, task boxes), fenced and indented code, block quotes, rules, inline
// code, bold, italic, strike-through and links.

import { h, safeHref } from "./dom.js";

const FENCE = /^\s{0,3}(```|~~~)\s*([\w+-]*)\s*$/;
const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
const BULLET = /^(\s*)[-*+]\s+(.*)$/;
const ORDERED = /^(\s*)(\d{1,9})[.)]\s+(.*)$/;
const QUOTE = /^\s{0,3}>\s?(.*)$/;

/** Render `source` into a DocumentFragment. */
export function renderMarkdown(source) {
  const lines = String(source || "").replace(/\r\n?/g, "\n").split("\n");
  const out = document.createDocumentFragment();
  let i = 0;
  while (i < lines.length) {
    i = block(lines, i, out);
  }
  return out;
}

function block(lines, i, out) {
  const line = lines[i];
  if (!line.trim()) return i + 1;
  let m = FENCE.exec(line);
  if (m) return fenced(lines, i, m, out);
  if ((m = HEADING.exec(line))) {
    out.append(h(`h${m[1].length + 2 > 6 ? 6 : m[1].length + 2}`, {}, inline(m[2])));
    return i + 1;
  }
  if (RULE.test(line)) {
    out.append(h("hr"));
    return i + 1;
  }
  if (QUOTE.test(line)) {
    const inner = [];
    while (i < lines.length && (m = QUOTE.exec(lines[i]))) {
      inner.push(m[1]);
      i += 1;
    }
    out.append(h("blockquote", {}, renderMarkdown(inner.join("\n"))));
    return i;
  }
  if (BULLET.test(line) || ORDERED.test(line)) return list(lines, i, out);
  if (/^( {4}|\t)/.test(line)) {
    const code = [];
    while (i < lines.length && (/^( {4}|\t)/.test(lines[i]) || !lines[i].trim())) {
      code.push(lines[i].replace(/^( {4}|\t)/, ""));
      i += 1;
    }
    out.append(h("pre", {}, h("code", {}, code.join("\n").replace(/\n+$/, ""))));
    return i;
  }
  const para = [];
  while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) {
    para.push(lines[i].trim());
    i += 1;
  }
  out.append(h("p", {}, inline(para.join(" "))));
  return i;
}

function startsBlock(line) {
  return (
    FENCE.test(line) ||
    HEADING.test(line) ||
    RULE.test(line) ||
    QUOTE.test(line) ||
    BULLET.test(line) ||
    ORDERED.test(line)
  );
}

function fenced(lines, i, m, out) {
  const marker = m[1];
  const code = [];
  i += 1;
  while (i < lines.length && !lines[i].trim().startsWith(marker)) {
    code.push(lines[i]);
    i += 1;
  }
  const attrs = m[2] ? { class: `lang-${m[2].replace(/[^\w-]/g, "")}` } : {};
  out.append(h("pre", {}, h("code", attrs, code.join("\n"))));
  return i + 1;
}

function list(lines, i, out) {
  const ordered = ORDERED.test(lines[i]) && !BULLET.test(lines[i]);
  const pattern = ordered ? ORDERED : BULLET;
  const first = pattern.exec(lines[i]);
  const el = h(ordered ? "ol" : "ul");
  if (ordered && first[2] !== "1") el.setAttribute("start", first[2]);
  let item = null;
  while (i < lines.length) {
    const line = lines[i];
    const m = pattern.exec(line);
    if (m) {
      item = listItem(ordered ? m[3] : m[2]);
      el.append(item);
    } else if (line.trim() && item && /^\s+/.test(line) && !startsBlock(line.trim())) {
      item.append(" ", inline(line.trim())); // a continuation line
    } else if (line.trim() && item && /^\s{2,}/.test(line)) {
      item.append(h("div", { class: "md-nested" }, renderMarkdown(line.trim())));
    } else {
      break;
    }
    i += 1;
  }
  out.append(el);
  return i;
}

function listItem(text) {
  const box = /^\[( |x|X)\]\s+(.*)$/.exec(text);
  if (!box) return h("li", {}, inline(text));
  const done = box[1] !== " ";
  return h(
    "li",
    { class: done ? "task-item done" : "task-item" },
    h("span", { class: "task-box", "aria-hidden": "true" }, done ? "☑" : "☐"),
    h("span", { class: "visually-hidden" }, done ? "done: " : "to do: "),
    inline(box[2]),
  );
}

// Inline spans, in order of precedence: code, links, bold, strike, italic.
const INLINE = [
  [/`([^`]+)`/, (m) => h("code", {}, m[1])],
  [
    /\[([^\]]+)\]\(([^)\s]+)(?:\s+"[^"]*")?\)/,
    (m) => {
      const href = safeHref(m[2]);
      return href
        ? h("a", { href, rel: "noopener noreferrer", target: "_blank" }, inline(m[1]))
        : document.createTextNode(m[0]);
    },
  ],
  [/\*\*([^*]+)\*\*|__([^_]+)__/, (m) => h("strong", {}, inline(m[1] || m[2]))],
  [/~~([^~]+)~~/, (m) => h("del", {}, inline(m[1]))],
  [/\*([^*\s][^*]*)\*|\b_([^_\s][^_]*)_\b/, (m) => h("em", {}, inline(m[1] || m[2]))],
];

/** Inline Markdown as a fragment of text nodes and formatting elements. */
export function inline(text) {
  const out = document.createDocumentFragment();
  let rest = text;
  while (rest) {
    let best = null;
    for (const [pattern, make] of INLINE) {
      const m = pattern.exec(rest);
      if (m && (best === null || m.index < best.m.index)) best = { m, make };
    }
    if (!best) {
      out.append(document.createTextNode(rest));
      break;
    }
    if (best.m.index > 0) out.append(document.createTextNode(rest.slice(0, best.m.index)));
    out.append(best.make(best.m));
    rest = rest.slice(best.m.index + best.m[0].length);
  }
  return out;
}
