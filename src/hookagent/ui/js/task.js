// The task page: header, timeline, progress, result, plan, actions and the live log.

import { ActionBar } from "./actions.js";
import { api } from "./api.js";
import {
  badge,
  clock,
  cost,
  fill,
  h,
  icon,
  safeHref,
  sourceLabel,
  span,
  statusLabel,
} from "./dom.js";
import { LogView } from "./logview.js";
import { renderMarkdown } from "./markdown.js";
import { recheck, signedIn } from "./session.js";

const FIRST_PAGE = 500; // small: the first lines paint sooner
const PAGE = 10000;
const PHASES = ["queued", "discovering", "pending_approval", "approved", "executing", "completed"];
const RUNNING = new Set(["discovering", "executing"]);
const AFTER_PR = new Set(["revising", "merged", "closed"]);
const $ = (id) => document.getElementById(id);

const taskId = decodeURIComponent(location.pathname.split("/").pop());
let task = null;
let meta = null;
let actions = null;
let progress = null;
let progressAt = 0;
let source = null;

const view = new LogView($("log-viewer"), { onSelect: showDetail });
view.onFollowChange = (on) => ($("follow").checked = on);
window.hookagentLog = view; // for tests and the curious: the viewer's state

start().catch((err) => showLoadError(err));

async function start() {
  document.title = `${taskId} · hookagent`;
  $("download").href = api.logsDownloadUrl(taskId);
  $("download").setAttribute("download", `${taskId}.log.json`);
  wireLogControls();
  const me = await signedIn();
  const firstLogs = api.logs(taskId, 0, FIRST_PAGE); // in parallel with the rest
  firstLogs.catch(() => {}); // its error, if any, is handled where it is awaited
  const [detail, m] = await Promise.all([api.task(taskId), api.meta()]);
  meta = m;
  actions = new ActionBar($("actions"), $("action-dialog"), {
    taskId,
    meta,
    me,
    onDone: () => refreshTask(),
  });
  showTask(detail);
  api.progress(taskId).then((p) => showProgress(p.progress)).catch(() => {});
  await loadHistory(firstLogs);
  follow();
}

function showLoadError(err) {
  const el = $("load-error");
  el.textContent = err.status === 404 ? `No task ${taskId} (unknown or expired).` : `Could not load the task: ${err.message}`;
  el.hidden = false;
  $("task-title").textContent = "Task not available";
}

async function refreshTask() {
  try {
    showTask(await api.task(taskId));
  } catch (err) {
    showLoadError(err);
  }
}

function showTask(detail) {
  task = detail;
  $("task-title").textContent = detail.title || detail.task_id;
  fill($("task-status"), badge(detail.status));
  $("task-spinner").hidden = !RUNNING.has(detail.status);
  showMeta(detail);
  showTimeline(detail);
  showResult(detail);
  showPlan(detail);
  showRounds(detail.rounds);
  actions.update(detail.status);
  showProgress(progress);
}

function showMeta(t) {
  const href = safeHref(t.url);
  const rows = [
    ["Task", h("code", {}, t.task_id)],
    [
      "Source",
      href
        ? h("a", { href, rel: "noopener noreferrer", target: "_blank" }, sourceLabel(t.source), " ", icon("external"))
        : sourceLabel(t.source),
    ],
    ["Repository", t.repository],
    ["Kind", t.kind === "review" ? `review of ${t.forge === "gitlab" ? "merge request !" : "pull request #"}${t.reviewed_pr}` : "change"],
    ["Created", h("time", { datetime: t.created_at }, clock(t.created_at))],
    ["Attempt", String(t.attempt || 0)],
  ];
  if (t.agent) rows.push(["Agent", t.agent]);
  if (t.approver) rows.push(["Approved by", t.approver]);
  if (t.regression_of) rows.push(["Regression of", h("a", { href: `/ui/tasks/${encodeURIComponent(t.regression_of)}` }, t.regression_of)]);
  fill($("task-meta"), rows.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))));
}

function showTimeline(t) {
  const latest = {};
  for (const change of t.history || []) latest[change.status] = change;
  const items = [];
  const ended = ["failed", "rejected", "cancelled"].includes(t.status);
  for (const phase of PHASES) {
    const change = latest[phase];
    const state = phase === t.status ? "current" : change ? "done" : "todo";
    items.push(timelineItem(phase, change, ended && state === "todo" ? "skipped" : state));
  }
  if (ended) items.push(timelineItem(t.status, latest[t.status], "current bad"));
  // After the pull request: a follow-up round, or how the request ended.
  if (AFTER_PR.has(t.status)) items.push(timelineItem(t.status, latest[t.status], t.status === "closed" ? "current bad" : "current"));
  fill($("timeline"), items);
}

function timelineItem(status, change, state) {
  return h(
    "li",
    { class: `step ${state}`, "aria-current": state.startsWith("current") ? "step" : null },
    h("span", { class: "dot", "aria-hidden": "true" }),
    h("span", { class: "step-name" }, statusLabel(status)),
    change ? h("time", { datetime: change.at, class: "step-time" }, clock(change.at)) : null,
    change && change.reason ? h("span", { class: "step-reason" }, change.reason) : null,
  );
}

function showResult(t) {
  const parts = [];
  const pr = safeHref(t.pr_url);
  if (pr) {
    parts.push(
      h("p", {}, h("a", { href: pr, class: "pr-link", rel: "noopener noreferrer", target: "_blank" }, icon("pr"), `Pull request${t.pr_number ? ` #${t.pr_number}` : ""}`)),
    );
  }
  if (t.branch) parts.push(h("p", {}, "Branch ", h("code", { class: "branch" }, t.branch)));
  if (t.commit) parts.push(h("p", {}, "Commit ", h("code", {}, t.commit.slice(0, 12))));
  if (t.result) parts.push(h("p", { class: "result-text" }, t.result));
  if (t.error) parts.push(h("p", { class: "error" }, icon("alert"), t.error));
  if (t.total_cost_usd !== null && t.total_cost_usd !== undefined) parts.push(h("p", { class: "muted" }, `Agent cost ${cost(t.total_cost_usd)}`));
  fill($("result"), parts.length ? parts : h("p", { class: "muted" }, "Not executed yet."));
}

// ---- review rounds: reviewers' text, always as text nodes (dom.js parses no HTML) ----

const items = (n) => `${n} ${n === 1 ? "item" : "items"}`;

function showRounds(r) {
  const any = r && (r.ran || r.finished.length || r.running_count || r.pending_count);
  $("rounds-panel").hidden = !any;
  if (!any) return;
  $("rounds-summary").textContent = `${r.ran} of at most ${r.max_rounds} rounds ran`;
  fill($("rounds"), r.finished.map(roundEntry));
  const waiting = [];
  if (r.running_count) {
    waiting.push(h("h3", {}, `Round ${r.ran} running: ${items(r.running_count)}`), feedbackList(r.running, r.running_count, "rounds-running"));
  }
  if (r.pending_count) {
    waiting.push(h("h3", {}, `Waiting for the next round: ${items(r.pending_count)}`), feedbackList(r.pending, r.pending_count, "rounds-pending"));
  }
  fill($("rounds-waiting"), waiting);
}

function roundEntry(round) {
  return h(
    "li",
    { class: round.error ? "round failed" : "round", dataset: { round: String(round.number) } },
    h(
      "div",
      { class: "round-head" },
      h("strong", {}, `Round ${round.number}`),
      h("span", { class: "kind-tag" }, round.kind === "ci" ? "CI fix" : "review"),
      h("span", { class: "muted" }, items(round.item_count)),
      round.finished_at ? h("time", { datetime: round.finished_at, class: "muted" }, clock(round.finished_at)) : null,
    ),
    h("p", { class: "round-outcome" }, round.outcome),
    h("details", {}, h("summary", {}, "What it addressed"), feedbackList(round.items, round.item_count)),
  );
}

function feedbackList(shown, count, id = null) {
  const rows = shown.map((item) => {
    const where = item.path ? ` on ${item.path}${item.line ? `:${item.line}` : ""}` : "";
    return h(
      "li",
      {},
      h("div", { class: "feedback-who" }, `${item.kind} by ${item.author || "?"}${where}`),
      h("p", { class: "feedback-body" }, item.body, item.truncated ? " …" : null),
    );
  });
  if (count > shown.length) rows.push(h("li", { class: "muted" }, `… and ${count - shown.length} more`));
  return h("ul", { class: "feedback", id }, rows);
}

let shownPlan = null;
function showPlan(t) {
  const key = `${t.plan}\u0000${(t.plans || []).length}`;
  if (key === shownPlan) return;
  shownPlan = key;
  fill($("plan"), t.plan ? renderMarkdown(t.plan) : h("p", { class: "muted" }, "No plan yet."));
  const earlier = (t.plans || []).slice(0, -1);
  fill(
    $("earlier-plans"),
    earlier.map((plan, n) =>
      h("details", { class: "earlier" }, h("summary", {}, `Earlier plan ${n + 1}`), h("div", { class: "markdown" }, renderMarkdown(plan))),
    ),
  );
}

function showProgress(p) {
  if (p) {
    progress = p;
    progressAt = Date.now();
  }
  const running = task && RUNNING.has(task.status);
  const q = progress || {};
  const tools = q.tool_calls ? Object.values(q.tool_calls).reduce((a, b) => a + b, 0) : 0;
  const todos = q.todos;
  const elapsed = q.elapsed_s !== undefined ? q.elapsed_s * 1000 + (running ? Date.now() - progressAt : 0) : NaN;
  const rows = [
    ["Phase", q.phase || (task ? task.phase : "—")],
    ["Turns", q.turns ?? "—"],
    ["Tool calls", progress ? String(tools) : "—"],
    ["Todos", todos ? `${todos.done}/${todos.total}` : "—"],
    ["Tokens", q.tokens ? `${q.tokens.input} in · ${q.tokens.output} out` : "—"],
    ["Cost", cost(q.cost_usd ?? (task ? task.total_cost_usd : undefined))],
    ["Elapsed", span(elapsed)],
    ["Lines", q.lines ?? "—"],
  ];
  fill($("progress"), rows.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, String(v)))));
  const bar = $("progress-bar");
  $("progress-bar-wrap").hidden = !running;
  if (todos && todos.total) {
    bar.max = todos.total;
    bar.value = todos.done;
  } else {
    bar.removeAttribute("value"); // indeterminate while running
  }
}

setInterval(() => {
  if (task && RUNNING.has(task.status)) showProgress(null);
}, 1000);

// ---- the log ----

async function loadHistory(firstLogs) {
  const hash = /^#seq-(\d+)$/.exec(location.hash);
  let wanted = hash ? Number(hash[1]) : -1; // a permalink: shown as soon as its page is in
  let pending = firstLogs;
  let first = true;
  while (pending) {
    const page = await pending;
    // The next page is on its way while this one is added.
    const more = page.logs.length > 0 && page.next_offset < page.total;
    pending = more ? api.logs(taskId, page.next_offset, PAGE) : null;
    view.append(page.logs);
    if (first) {
      first = false;
      requestAnimationFrame(() => performance.mark("log-first-paint"));
    }
    if (wanted >= 0 && view.nextSeq > wanted) {
      goToSeq(wanted);
      wanted = -1;
    }
    $("log-count").textContent = `${view.size.toLocaleString()} lines`;
  }
  performance.mark("log-loaded");
  if (wanted >= 0) goToSeq(wanted);
}

function follow() {
  source = api.logStream(taskId, view.nextSeq);
  const state = $("log-state");
  const take = (event) => {
    const entry = JSON.parse(event.data);
    view.append([entry]);
    $("log-count").textContent = `${view.size.toLocaleString()} lines`;
    return entry;
  };
  source.onopen = () => setLive(state, "live", "live");
  source.onerror = () => {
    if (source.readyState !== EventSource.CLOSED) setLive(state, "reconnecting…", "reconnecting");
    else recheck(); // refused (a session that ended), not dropped
  };
  source.onmessage = take;
  source.addEventListener("status", (event) => {
    const entry = take(event);
    if (task) task.status = entry.status;
    refreshTask();
  });
  source.addEventListener("progress", (event) => showProgress(JSON.parse(event.data)));
  source.addEventListener("end", () => {
    source.close();
    setLive(state, "ended", "ended");
    refreshTask();
  });
}

function setLive(el, text, cls) {
  el.textContent = text;
  el.className = `live-state ${cls}`;
}

function goToSeq(seq) {
  const notice = $("log-notice");
  notice.textContent = view.scrollToSeq(seq) ? "" : `Line ${seq} is not shown (filtered or not loaded).`;
}

window.addEventListener("hashchange", () => {
  const hash = /^#seq-(\d+)$/.exec(location.hash);
  if (hash) goToSeq(Number(hash[1]));
});

function wireLogControls() {
  const form = $("log-filters");
  const apply = () => {
    const streams = [...form.querySelectorAll("input[name=stream]:checked")].map((i) => i.value);
    const kind = $("log-kind").value;
    view.setFilter({
      streams,
      kinds: kind ? [kind] : [],
      level: $("log-level").value,
      q: $("log-q").value,
      onlyMatches: $("log-only").checked,
    });
    const q = $("log-q").value.trim();
    $("log-notice").textContent = q ? `${view.matchCount().toLocaleString()} lines match “${q}”` : "";
    $("log-count").textContent = `${view.rowCount.toLocaleString()} of ${view.size.toLocaleString()} lines shown`;
  };
  let timer = 0;
  $("log-q").addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(apply, 150); // typing: one rebuild when the user pauses
  });
  form.addEventListener("change", apply);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    apply();
  });
  $("follow").addEventListener("change", (event) => view.setFollow(event.target.checked));
  $("collapse-tools").addEventListener("change", (event) => view.setCollapseAll(event.target.checked));
  $("jump-error").addEventListener("click", () => {
    $("log-notice").textContent = view.firstError() ? "" : "No error lines.";
  });
  $("log-viewer").addEventListener("log:copied", (event) => {
    const { seq, failed } = event.detail;
    $("log-notice").textContent = failed ? `Link to line ${seq} is in the address bar.` : `Link to line ${seq} copied.`;
  });
  $("log-detail-close").addEventListener("click", () => ($("log-detail").hidden = true));
}

function showDetail(entry) {
  $("log-detail").hidden = false;
  $("log-detail-title").textContent = `#${entry.seq} · ${entry.stream}${entry.kind ? ` · ${entry.kind}` : ""} · ${entry.timestamp}`;
  $("log-detail-text").textContent = entry.message;
}
