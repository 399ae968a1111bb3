// Lifecycle buttons (approve, reject, revise, cancel, retry) with a confirmation dialog.
// Whether a button is enabled comes from the server's transition table (GET /ui/meta);
// whether it is shown at all from the signed-in role (AUTH SEAM: api.me / can).

import { api, can } from "./api.js";
import { announce, h, icon, statusLabel } from "./dom.js";

const ACTIONS = {
  approve: {
    label: "Approve",
    icon: "check",
    cls: "primary",
    title: "Approve the plan",
    text: "The agent will execute the plan on a new branch and open a pull request.",
    field: "comment",
    fieldLabel: "Comment for the agent (optional)",
  },
  reject: {
    label: "Reject",
    icon: "x",
    cls: "danger",
    title: "Reject the plan",
    text: "The task ends as rejected.",
    field: "reason",
    fieldLabel: "Reason (optional)",
  },
  revise: {
    label: "Revise",
    icon: "edit",
    cls: "",
    title: "Ask for a new plan",
    text: "The agent plans again with your feedback; the current plan is kept.",
    field: "feedback",
    fieldLabel: "Feedback",
    required: true,
  },
  cancel: {
    label: "Cancel",
    icon: "stop",
    cls: "danger",
    title: "Cancel the task",
    text: "A running agent is stopped and the task ends as cancelled.",
    field: "reason",
    fieldLabel: "Reason (optional)",
  },
  retry: {
    label: "Retry",
    icon: "retry",
    cls: "",
    title: "Retry the task",
    text: "A new attempt starts from the phase the task stopped in.",
  },
};

export class ActionBar {
  /** `root` gets the buttons; `dialog` is the page's <dialog id="action-dialog">. */
  constructor(root, dialog, { taskId, meta, me, onDone }) {
    this.root = root;
    this.dialog = dialog;
    this.taskId = taskId;
    this.meta = meta;
    this.onDone = onDone;
    this.status = null;
    this.buttons = {};
    for (const [name, spec] of Object.entries(ACTIONS)) {
      if (!can(me, name)) continue; // a viewer does not see what it may not do
      const button = h(
        "button",
        {
          type: "button",
          class: `btn ${spec.cls}`,
          dataset: { action: name },
          onclick: () => this.open(name),
        },
        icon(spec.icon),
        spec.label,
      );
      this.buttons[name] = button;
      root.append(button);
    }
    this.form = dialog.querySelector("form");
    this.form.addEventListener("submit", (event) => this.submit(event));
    dialog.querySelector("#action-cancel").addEventListener("click", () => dialog.close());
  }

  /** Enable exactly the actions the transition table allows from `status`. */
  update(status) {
    this.status = status;
    for (const [name, button] of Object.entries(this.buttons)) {
      const allowed = (this.meta.actions[name] || []).includes(status);
      button.disabled = !allowed;
      button.title = allowed ? ACTIONS[name].title : `Not possible while ${statusLabel(status).toLowerCase()}`;
    }
  }

  open(name) {
    const spec = ACTIONS[name];
    this.current = name;
    const d = this.dialog;
    d.querySelector("#action-title").textContent = spec.title;
    d.querySelector("#action-text").textContent = spec.text;
    const field = d.querySelector("#action-field");
    const input = d.querySelector("#action-input");
    field.hidden = !spec.field;
    input.value = "";
    input.required = Boolean(spec.required);
    d.querySelector("#action-label").textContent = spec.fieldLabel || "";
    const confirm = d.querySelector("#action-confirm");
    confirm.textContent = spec.label;
    confirm.className = `btn ${spec.cls || "primary"}`;
    confirm.disabled = false;
    this.showError("");
    d.showModal();
    (spec.field ? input : confirm).focus();
  }

  async submit(event) {
    event.preventDefault();
    const name = this.current;
    const spec = ACTIONS[name];
    const d = this.dialog;
    const input = d.querySelector("#action-input");
    const text = input.value.trim();
    if (spec.required && !text) {
      this.showError(`${spec.fieldLabel} is required.`);
      input.focus();
      return;
    }
    const body = spec.field && text ? { [spec.field]: text } : {};
    const confirm = d.querySelector("#action-confirm");
    confirm.disabled = true;
    try {
      const result = await api.action(this.taskId, name, body);
      d.close();
      announce(`${spec.label}: task is now ${statusLabel(result.status)}`);
      this.onDone(result);
    } catch (err) {
      this.showError(err.message || String(err));
      confirm.disabled = false;
    }
  }

  showError(text) {
    const el = this.dialog.querySelector("#action-error");
    el.textContent = text;
    el.hidden = !text;
  }
}
