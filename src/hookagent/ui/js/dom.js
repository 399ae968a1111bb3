// Small DOM and formatting helpers. Text always goes in as text nodes: nothing here
// parses HTML.

const SVG_NS = "http://www.w3.org/2000/svg";

/** h("a", {href, class: "x", onclick}, ...children): an element; strings become text. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// 24×24 stroke icons (paths in the style of Feather, MIT), built as SVG nodes.
const ICONS = {
  check: "M20 6 9 17l-5-5",
  x: "M18 6 6 18M6 6l12 12",
  edit: "M12 20h9M16.5 3.5a2.1 2.1 0 0 1 3 3L7 19l-4 1 1-4Z",
  stop: "M6 6h12v12H6z",
  retry: "M1 4v6h6M3.5 15a9 9 0 1 0 2.1-9.4L1 10",
  link: "M10 13a5 5 0 0 0 7.5.5l3-3a5 5 0 0 0-7-7l-1.7 1.7M14 11a5 5 0 0 0-7.5-.5l-3 3a5 5 0 0 0 7 7l1.7-1.7",
  download: "M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4M7 10l5 5 5-5M12 15V3",
  search: "M11 19a8 8 0 1 0 0-16 8 8 0 0 0 0 16ZM21 21l-4.3-4.3",
  chevron: "m9 18 6-6-6-6",
  alert: "M12 9v4M12 17h.01M10.3 3.9 1.8 18a2 2 0 0 0 1.7 3h17a2 2 0 0 0 1.7-3L13.7 3.9a2 2 0 0 0-3.4 0Z",
  pr: "M18 21a3 3 0 1 0 0-6 3 3 0 0 0 0 6ZM6 9a3 3 0 1 0 0-6 3 3 0 0 0 0 6ZM6 9v12M13 6h3a2 2 0 0 1 2 2v7",
  external: "M18 13v6a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2h6M15 3h6v6M10 14 21 3",
  arrowDown: "M12 5v14M19 12l-7 7-7-7",
};

/** An inline SVG icon (decorative: hidden from assistive technology). */
export function icon(name, cls = "icon") {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", cls);
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", ICONS[name] || ICONS.alert);
  svg.append(path);
  return svg;
}

const STATUS_LABELS = {
  queued: "Queued",
  discovering: "Planning",
  pending_approval: "Awaiting approval",
  approved: "Approved",
  executing: "Executing",
  completed: "Completed",
  failed: "Failed",
  rejected: "Rejected",
  cancelled: "Cancelled",
  revising: "Revising",
  merged: "Merged",
  closed: "Closed unmerged",
};

export const statusLabel = (status) => STATUS_LABELS[status] || status;

/** A status badge; colour comes from the stylesheet by status. */
export function badge(status) {
  return h("span", { class: `badge status-${status}`, dataset: { status } }, statusLabel(status));
}

const SOURCES = { sentry: "Sentry", jira: "Jira", github: "GitHub", gitlab: "GitLab" };
export const sourceLabel = (source) => SOURCES[source] || source || "—";

export function sourceTag(source) {
  return h("span", { class: `source source-${source}` }, sourceLabel(source));
}

export const parseTime = (iso) => (iso ? Date.parse(iso) : NaN);

/** "4 s", "12 min", "3 h", "2 d". */
export function span(ms) {
  if (!Number.isFinite(ms) || ms < 0) return "—";
  const s = ms / 1000;
  if (s < 60) return `${Math.floor(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.floor(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export function age(iso, now = Date.now()) {
  const ms = now - parseTime(iso);
  return Number.isFinite(ms) ? `${span(ms).split(" ").slice(0, 2).join(" ")} ago` : "—";
}

export function cost(usd) {
  return typeof usd === "number" ? `$${usd.toFixed(usd < 1 ? 4 : 2)}` : "—";
}

export function clock(iso) {
  const t = parseTime(iso);
  if (!Number.isFinite(t)) return "";
  return new Date(t).toLocaleString(undefined, { hour12: false });
}

/** A URL safe to link to (http/https only). */
export function safeHref(url) {
  // No URL is no link: new URL(null, base) would resolve "null" against this page.
  if (typeof url !== "string" || url === "") return null;
  try {
    const parsed = new URL(url, location.href);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch (err) {
    return null;
  }
}

/** Tell screen-reader users about live changes, politely. */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (region) region.textContent = text;
}
