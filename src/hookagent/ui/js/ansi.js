// ANSI SGR colours → segments with CSS classes. Supported: 0 (reset), 1 (bold), 2 (dim),
// 3 (italic), 4 (underline), 22/23/24, 30–37 and 90–97 (foreground), 39, 40–47 and
// 100–107 (background), 49. Other escape sequences are dropped.

// CSI sequences (ESC [ params final) and two-character escapes.
const ESCAPES = /\x1b\[([0-9;]*)([A-Za-z])|\x1b[@-Z\\-_]/g;

/** Whether `text` holds an escape at all (the common case is plain text: skip the work). */
export const hasAnsi = (text) => text.indexOf("\x1b") !== -1;

/** `[{text, cls}]` for `text`; `cls` is a space-separated class list or "". */
export function parseAnsi(text) {
  if (!hasAnsi(text)) return [{ text, cls: "" }];
  const out = [];
  const state = { fg: -1, bg: -1, bold: false, dim: false, italic: false, underline: false };
  let last = 0;
  ESCAPES.lastIndex = 0;
  let m;
  while ((m = ESCAPES.exec(text)) !== null) {
    if (m.index > last) out.push({ text: text.slice(last, m.index), cls: classes(state) });
    if (m[2] === "m") apply(state, m[1]);
    last = ESCAPES.lastIndex;
  }
  if (last < text.length) out.push({ text: text.slice(last), cls: classes(state) });
  return out;
}

/** `text` without escape sequences (for search, copying and downloads). */
export const stripAnsi = (text) => (hasAnsi(text) ? text.replace(ESCAPES, "") : text);

function apply(state, params) {
  const codes = params === "" ? [0] : params.split(";").map((p) => Number(p || 0));
  for (let i = 0; i < codes.length; i += 1) {
    const c = codes[i];
    if (c === 0) Object.assign(state, { fg: -1, bg: -1, bold: false, dim: false, italic: false, underline: false });
    else if (c === 1) state.bold = true;
    else if (c === 2) state.dim = true;
    else if (c === 3) state.italic = true;
    else if (c === 4) state.underline = true;
    else if (c === 22) state.bold = state.dim = false;
    else if (c === 23) state.italic = false;
    else if (c === 24) state.underline = false;
    else if (c >= 30 && c <= 37) state.fg = c - 30;
    else if (c >= 90 && c <= 97) state.fg = c - 90 + 8;
    else if (c === 39) state.fg = -1;
    else if (c >= 40 && c <= 47) state.bg = c - 40;
    else if (c >= 100 && c <= 107) state.bg = c - 100 + 8;
    else if (c === 49) state.bg = -1;
    else if ((c === 38 || c === 48) && codes[i + 1] === 5) i += 2; // 256 colours: skipped
    else if ((c === 38 || c === 48) && codes[i + 1] === 2) i += 4; // true colour: skipped
  }
}

function classes(state) {
  const cls = [];
  if (state.fg >= 0) cls.push(`ansi-fg${state.fg}`);
  if (state.bg >= 0) cls.push(`ansi-bg${state.bg}`);
  if (state.bold) cls.push("ansi-bold");
  if (state.dim) cls.push("ansi-dim");
  if (state.italic) cls.push("ansi-italic");
  if (state.underline) cls.push("ansi-underline");
  return cls.join(" ");
}
