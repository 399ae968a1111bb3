// Search snippets arrive HTML-escaped with matches in <mark>. They are turned into nodes
// here without ever being parsed as HTML: split on the two tags, decode the five escapes.

import { h } from "./dom.js";

const ENTITIES = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#x27;": "'", "&#39;": "'" };
const decode = (text) => text.replace(/&(amp|lt|gt|quot|#x27|#39);/g, (e) => ENTITIES[e]);

/** A fragment: text nodes, and <mark> elements for the matches. */
export function snippet(escaped) {
  const out = document.createDocumentFragment();
  let marked = false;
  for (const part of String(escaped).split(/(<mark>|<\/mark>)/)) {
    if (part === "<mark>") marked = true;
    else if (part === "</mark>") marked = false;
    else if (part) out.append(marked ? h("mark", {}, decode(part)) : document.createTextNode(decode(part)));
  }
  return out;
}
