// Signing in: who the browser acts as (GET /ui/me), the token dialog when the server
// answers 401, and the header's name and sign-out button. The token goes to the server
// once (POST /ui/session, in a body, never a URL) and is not kept: the server answers with
// an HttpOnly session cookie that every later request and stream sends by itself.

import { ApiError, api } from "./api.js";
import { h } from "./dom.js";

let started = false;
let pending = null; // the open dialog: one, however many requests answered 401

/** Who the browser acts as, after asking for a token if the server wants one. */
export async function signedIn() {
  window.addEventListener("hookagent:auth-required", () => {
    // The session ended while the page was open: sign in again, then reload the data.
    if (started) askForToken().then(() => location.reload());
  });
  let me = null;
  while (!me) {
    try {
      me = await api.me();
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401)) throw err;
      await askForToken();
    }
  }
  started = true;
  showWho(me);
  return me;
}

/** After a live stream closed for good: ask the server whether the session is still on. */
export function recheck() {
  // A 401 raises hookagent:auth-required, which opens the dialog; anything else is the
  // stream's own trouble, already shown as "reconnecting…".
  api.me().catch((err) => console.warn("session check failed:", err.message));
}

function askForToken() {
  if (!pending) pending = new Promise((resolve) => openDialog(resolve));
  return pending;
}

function openDialog(resolve) {
  const input = h("input", {
    id: "signin-token",
    name: "token",
    type: "password",
    autocomplete: "current-password",
    spellcheck: "false",
    required: true,
    "aria-describedby": "signin-text",
  });
  const error = h("p", { id: "signin-error", class: "error", role: "alert", hidden: true });
  const submit = h("button", { type: "submit", id: "signin-submit", class: "btn primary" }, "Sign in");
  const form = h(
    "form",
    { id: "signin-form", method: "dialog" },
    h("h2", { id: "signin-title" }, "Sign in to hookagent"),
    h("p", { id: "signin-text" }, "This server needs an API token. The browser keeps a session; the token itself is not stored."),
    h("label", { class: "field block", for: "signin-token" }, h("span", {}, "API token"), input),
    error,
    h("div", { class: "dialog-buttons" }, submit),
  );
  const dialog = h("dialog", { id: "signin-dialog", "aria-labelledby": "signin-title" }, form);
  // Escape would leave a page that can load nothing: the dialog stays until signed in.
  dialog.addEventListener("cancel", (event) => event.preventDefault());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) {
      showError(error, "Paste an API token.");
      input.focus();
      return;
    }
    submit.disabled = true;
    try {
      await api.signIn(token);
    } catch (err) {
      const known = err instanceof ApiError && err.status === 401;
      showError(error, known ? "That token is not one this server knows." : err.message);
      submit.disabled = false;
      input.select();
      input.focus();
      return;
    }
    input.value = "";
    dialog.close();
    dialog.remove();
    pending = null;
    resolve();
  });
  document.body.append(dialog);
  dialog.showModal();
  input.focus();
}

function showError(el, text) {
  el.textContent = text;
  el.hidden = !text;
}

function showWho(me) {
  const bar = document.querySelector(".topbar");
  if (!bar || me.anonymous || document.getElementById("session")) return;
  const out = h("button", { type: "button", id: "sign-out", class: "link-button" }, "Sign out");
  out.addEventListener("click", async () => {
    out.disabled = true;
    try {
      await api.signOut();
    } finally {
      location.reload(); // signed out: the page asks for a token again
    }
  });
  bar.append(h("div", { id: "session", class: "session" }, h("span", { class: "who", title: `role: ${me.role}` }, `${me.name} · ${me.role}`), out));
}
