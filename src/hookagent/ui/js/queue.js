// Jobs waiting, runs in progress and, when the server reports them (GET /workers), the
// workers running them; "unknown" when it does not.

import { api } from "./api.js";
import { age, badge, fill, h, parseTime, span } from "./dom.js";
import { recheck, signedIn } from "./session.js";

const $ = (id) => document.getElementById(id);
const WAITING = ["queued", "approved"];
const RUNNING = ["discovering", "executing"];
let state = { waiting: [], running: [], workers: null, stats: null };

signedIn()
  .then(listen)
  .catch((err) => {
    $("error").textContent = `Could not load the queue: ${err.message}`;
    $("error").hidden = false;
  });
setInterval(render, 5000); // the ages move on

async function refresh() {
  try {
    const lists = await Promise.all([...WAITING, ...RUNNING].map((status) => api.tasks({ status, limit: 1000 })));
    const all = lists.flatMap((l) => l.tasks);
    state = {
      waiting: all.filter((t) => WAITING.includes(t.status)).sort(byUpdated),
      running: all.filter((t) => RUNNING.includes(t.status)).sort(byUpdated),
      workers: await api.workers(),
      stats: await api.stats(),
    };
    $("error").hidden = true;
  } catch (err) {
    $("error").textContent = `Could not load the queue: ${err.message}`;
    $("error").hidden = false;
  }
  render();
}

const byUpdated = (a, b) => parseTime(a.updated_at) - parseTime(b.updated_at);

/** Worker rows from GET /workers, whatever its exact shape: a list or {workers: [...]}. */
function workerList(answer) {
  if (!answer) return null;
  const list = Array.isArray(answer) ? answer : answer.workers || [];
  return list.map((w) => ({
    name: w.name || w.worker_id || w.id || w.consumer || "worker",
    host: w.host || w.hostname || "",
    tasks: [w.task_id, w.current_task, ...(w.tasks || []), ...(w.running || [])].filter(Boolean).map((t) => (typeof t === "string" ? t : t.task_id)),
    seen: w.last_seen || w.heartbeat_at || w.heartbeat || w.seen_at || "",
  }));
}

function render() {
  const now = Date.now();
  const workers = workerList(state.workers);
  const runner = new Map();
  for (const w of workers || []) for (const t of w.tasks) runner.set(t, w.host ? `${w.name} (${w.host})` : w.name);
  const oldest = state.waiting[0];
  const stats = [
    ["Waiting", String(state.waiting.length)],
    ["Oldest waiting", oldest ? span(now - parseTime(oldest.updated_at)) : "—"],
    ["Running", String(state.running.length)],
    ["Workers", workers ? String(workers.length) : "unknown"],
  ];
  fill($("summary"), stats.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))));
  const link = (t) => h("a", { href: `/ui/tasks/${encodeURIComponent(t.task_id)}` }, t.title || t.task_id);
  fill(
    $("waiting"),
    state.waiting.length
      ? state.waiting.map((t) =>
          h("tr", { dataset: { taskId: t.task_id } }, h("td", {}, badge(t.status)), h("td", {}, link(t)), h("td", {}, t.repository), h("td", {}, span(now - parseTime(t.updated_at)))),
        )
      : h("tr", {}, h("td", { colspan: "4", class: "muted" }, "Nothing waiting.")),
  );
  fill(
    $("running"),
    state.running.length
      ? state.running.map((t) =>
          h(
            "tr",
            { dataset: { taskId: t.task_id } },
            h("td", {}, badge(t.status)),
            h("td", {}, link(t)),
            h("td", {}, t.repository),
            h("td", {}, span(now - parseTime(t.updated_at))),
            h("td", { class: "worker" }, runner.get(t.task_id) || "unknown"),
          ),
        )
      : h("tr", {}, h("td", { colspan: "5", class: "muted" }, "Nothing running.")),
  );
  fill($("changes"), changeRows(state.stats));
  fill(
    $("workers"),
    workers === null
      ? h("p", { class: "muted" }, "unknown — this server does not report workers (no GET /workers).")
      : workers.length
        ? h("ul", { class: "workers" }, workers.map((w) => h("li", {}, h("strong", {}, w.name), w.host ? ` on ${w.host}` : "", w.seen ? ` · seen ${age(w.seen, now)}` : "", w.tasks.length ? ` · running ${w.tasks.join(", ")}` : " · idle")))
        : h("p", { class: "muted" }, "No worker has reported in."),
  );
}

/** One row per repository, source and agent, then the total; "—" where nothing ended yet. */
function changeRows(stats) {
  if (!stats || !stats.groups.length) return h("tr", {}, h("td", { colspan: "10", class: "muted" }, "No change request opened yet."));
  const pct = (x) => (x == null ? "—" : `${Math.round(x * 100)}%`);
  const num = (x) => (x == null ? "—" : x.toFixed(1));
  const row = (g, total) =>
    h(
      "tr",
      { class: total ? "total" : null, dataset: { repository: total ? "*" : g.repository } },
      h("td", {}, total ? "All" : g.repository),
      h("td", {}, total ? "" : g.source),
      h("td", {}, total ? "" : g.agent),
      h("td", {}, String(g.opened)),
      h("td", {}, String(g.merged)),
      h("td", {}, String(g.closed_unmerged)),
      h("td", {}, pct(g.merge_rate)),
      h("td", {}, g.median_time_to_merge_s == null ? "—" : span(g.median_time_to_merge_s * 1000)),
      h("td", {}, num(g.rounds_per_pr)),
      h("td", {}, num(g.ci_fixes_per_pr)),
    );
  return [...stats.groups.map((g) => row(g, false)), row(stats.total, true)];
}

function listen() {
  const source = api.taskEvents();
  const live = $("live");
  let timer = 0;
  source.onopen = () => {
    live.textContent = "live";
    live.className = "live-state live";
    refresh();
  };
  source.onerror = () => {
    live.textContent = "reconnecting…";
    live.className = "live-state reconnecting";
    if (source.readyState === EventSource.CLOSED) recheck(); // refused, not dropped
  };
  source.addEventListener("task", () => {
    clearTimeout(timer);
    timer = setTimeout(refresh, 150);
  });
}
