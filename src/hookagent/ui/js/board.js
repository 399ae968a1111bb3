// The task board: newest first, counts per status, filters, log search, live over SSE.

import { api } from "./api.js";
import { age, announce, badge, cost, fill, h, parseTime, sourceTag, span, statusLabel } from "./dom.js";
import { recheck, signedIn } from "./session.js";
import { snippet } from "./snippet.js";

const $ = (id) => document.getElementById(id);
const LIMIT = 500;
let meta = null;
let tasks = [];
let counts = {};
let hits = null; // task id → first hit, while a search is shown
const changed = new Map(); // task id → time of its last live change (for the highlight)

start().catch((err) => showError(err));

async function start() {
  await signedIn();
  meta = await api.meta();
  const statusSelect = $("f-status");
  for (const status of meta.statuses) statusSelect.append(h("option", { value: status }, statusLabel(status)));
  const params = new URLSearchParams(location.search);
  statusSelect.value = params.get("status") || "";
  $("f-repo").dataset.wanted = params.get("repo") || "";
  $("f-q").value = params.get("q") || "";
  $("filters").addEventListener("change", (event) => {
    if (event.target.id !== "f-q") refresh();
  });
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch();
  });
  $("f-clear").addEventListener("click", () => {
    $("f-q").value = "";
    runSearch();
  });
  await refresh();
  if ($("f-q").value) await runSearch();
  listen();
  setInterval(render, 15000); // ages and running durations move on
}

function showError(err) {
  const el = $("error");
  el.textContent = err ? `Could not load tasks: ${err.message}` : "";
  el.hidden = !err;
}

async function refresh() {
  const status = $("f-status").value;
  try {
    const [list, c] = await Promise.all([api.tasks({ status, limit: LIMIT }), api.counts()]);
    tasks = list.tasks;
    counts = c;
    showError(null);
  } catch (err) {
    showError(err);
    return;
  }
  syncUrl();
  renderCounts();
  renderRepos();
  render();
}

function syncUrl() {
  const params = new URLSearchParams();
  if ($("f-status").value) params.set("status", $("f-status").value);
  const repo = $("f-repo").value || $("f-repo").dataset.wanted;
  if (repo) params.set("repo", repo);
  if ($("f-q").value.trim()) params.set("q", $("f-q").value.trim());
  const query = params.toString();
  history.replaceState(null, "", query ? `?${query}` : location.pathname);
}

function renderCounts() {
  const current = $("f-status").value;
  const chip = (status, label, n) =>
    h(
      "button",
      {
        type: "button",
        class: `count status-${status || "all"}`,
        "aria-pressed": String(current === status),
        dataset: { status: status || "all" },
        onclick: () => {
          $("f-status").value = current === status ? "" : status;
          refresh();
        },
      },
      h("span", { class: "count-label" }, label),
      h("span", { class: "count-n" }, String(n)),
    );
  const chips = [chip("", "All", counts.total || 0)];
  for (const status of meta.statuses) chips.push(chip(status, statusLabel(status), counts.counts[status] || 0));
  fill($("counts"), chips);
}

function renderRepos() {
  const select = $("f-repo");
  const wanted = select.value || select.dataset.wanted;
  const repos = [...new Set(tasks.map((t) => t.repository))].sort();
  if (wanted && !repos.includes(wanted)) repos.unshift(wanted);
  fill(select, h("option", { value: "" }, "all"), repos.map((r) => h("option", { value: r }, r)));
  select.value = wanted || "";
  select.dataset.wanted = "";
}

function visibleTasks() {
  const repo = $("f-repo").value;
  return tasks.filter((t) => (!repo || t.repository === repo) && (!hits || hits.has(t.task_id)));
}

function render() {
  const now = Date.now();
  const rows = visibleTasks().map((t) => row(t, now));
  fill($("rows"), rows);
  $("empty").hidden = rows.length > 0;
  $("empty").textContent = tasks.length ? "No tasks match these filters." : "No tasks yet. A webhook from Sentry, Jira or GitHub starts one.";
}

const TERMINAL = () => new Set(meta.terminal);

function row(t, now) {
  const ended = TERMINAL().has(t.status);
  const created = parseTime(t.created_at);
  const duration = (ended ? parseTime(t.updated_at) : now) - created;
  const link = h("a", { href: `/ui/tasks/${encodeURIComponent(t.task_id)}`, class: "task-link" }, t.title || t.task_id);
  const hit = hits && hits.get(t.task_id);
  const fresh = now - (changed.get(t.task_id) || 0) < 3000;
  return h(
    "tr",
    { dataset: { taskId: t.task_id, status: t.status }, class: fresh ? "fresh" : null },
    h("td", { "data-label": "Status" }, badge(t.status)),
    h(
      "td",
      { class: "task-cell", "data-label": "Task" },
      t.kind === "review" ? h("span", { class: "kind-tag", title: "a read-only review of a pull request" }, "review") : null,
      link,
      h("span", { class: "task-id" }, t.task_id),
      hit ? h("span", { class: "hit-snippet" }, snippet(hit.snippet)) : null,
    ),
    h("td", { "data-label": "Source" }, sourceTag(t.source)),
    h("td", { "data-label": "Repository" }, h("span", { class: "repo" }, t.repository)),
    h("td", { "data-label": "Age" }, h("time", { datetime: t.created_at, title: t.created_at }, age(t.created_at, now))),
    h("td", { "data-label": "Duration" }, span(duration)),
    h("td", { class: "num", "data-label": "Cost" }, cost(t.total_cost_usd)),
  );
}

async function runSearch() {
  const q = $("f-q").value.trim();
  $("f-clear").hidden = !q;
  syncUrl();
  if (!q) {
    hits = null;
    $("search-results").hidden = true;
    render();
    return;
  }
  try {
    const result = await api.search(q, { status: $("f-status").value || undefined });
    hits = new Map();
    for (const hit of result.hits) if (!hits.has(hit.task_id)) hits.set(hit.task_id, hit);
    const titles = new Map(tasks.map((t) => [t.task_id, t.title]));
    fill(
      $("hits"),
      result.hits.map((hit) =>
        h(
          "li",
          {},
          h("a", { href: `/ui/tasks/${encodeURIComponent(hit.task_id)}#seq-${hit.seq}` }, titles.get(hit.task_id) || hit.task_id, ` · line ${hit.seq}`),
          h("span", { class: "hit-snippet" }, snippet(hit.snippet)),
        ),
      ),
    );
    if (!result.hits.length) $("hits").append(h("li", { class: "muted" }, "Nothing found."));
    $("search-results").hidden = false;
    showError(null);
    announce(`${result.count} search results`);
  } catch (err) {
    showError(err);
  }
  render();
}

function listen() {
  const source = api.taskEvents();
  let timer = 0;
  const live = $("live");
  source.onopen = () => {
    live.textContent = "live";
    live.className = "live-state live";
    refresh(); // anything that happened while we were away
  };
  source.onerror = () => {
    live.textContent = "reconnecting…";
    live.className = "live-state reconnecting";
    if (source.readyState === EventSource.CLOSED) recheck(); // refused, not dropped
  };
  source.addEventListener("task", (event) => {
    const change = JSON.parse(event.data);
    changed.set(change.task_id, Date.now());
    announce(`Task ${change.task_id} is now ${statusLabel(change.status)}`);
    clearTimeout(timer);
    timer = setTimeout(refresh, 150); // a burst of changes: one reload
  });
}
