// The queue: the organization's jobs (GET /v1/jobs) with state, pending reason and queue position,
// refreshed whenever the event stream announces a job event (or polled while it cannot).

import { badge, card, errorNotice, fmtAgo, fmtDuration, fmtTime, h, loading, replace, shortId, table, tile } from "../dom.js";
import { liveRefresh, pageHead } from "./live.js";

const PAGE = 100;
const FINISHED = new Set(["succeeded", "failed", "cancelled", "timed_out"]);
const FILTERS = [
  ["", "All states"],
  ["queued", "Queued"],
  ["scheduled", "Scheduled"],
  ["running", "Running"],
  ["succeeded", "Succeeded"],
  ["failed", "Failed"],
  ["cancelled", "Cancelled"],
  ["timed_out", "Timed out"],
];
const COLUMNS = [
  { label: "Job" },
  { label: "State" },
  { label: "Waiting because / running on" },
  { label: "Position", num: true },
  { label: "GPUs", num: true },
  { label: "Priority", num: true },
  { label: "Submitted" },
  { label: "Run time", num: true },
];

function runTime(job) {
  if (!job.started_at) return "—";
  const end = job.finished_at ? new Date(job.finished_at) : new Date();
  return fmtDuration((end - new Date(job.started_at)) / 1000);
}

function why(job) {
  if (job.status === "queued" && job.pending_reason) {
    return [job.pending_reason.message, h("span", { class: "secondary" }, job.pending_reason.code)];
  }
  if (job.status === "queued" && job.held) return "held";
  if (job.error_message) return job.error_message;
  if (job.exit_code !== null && job.exit_code !== undefined) return `exit code ${job.exit_code}`;
  if (FINISHED.has(job.status)) return "";
  const nodes = job.placements?.length ? job.placements.map((p) => p.node_id) : [job.node_id].filter(Boolean);
  return nodes.length ? ["on node ", h("span", { class: "mono" }, nodes.map(shortId).join(", "))] : "";
}

export function jobRow(job) {
  const gpus = job.nodes > 1 ? `${job.gpu_count} × ${job.nodes}` : String(job.gpu_count);
  return h(
    "tr",
    { "data-job-id": job.id, "data-state": job.status },
    h(
      "td",
      { class: "name" },
      h("a", { href: `#/jobs/${encodeURIComponent(job.id)}`, class: "job-link" }, job.name || "(unnamed)"),
      h("span", { class: "secondary mono" }, shortId(job.id)),
    ),
    h("td", {}, badge(job.status)),
    h("td", { class: "reason" }, why(job)),
    h("td", { class: "num" }, job.queue_position ?? "—"),
    h("td", { class: "num" }, gpus, job.gpu_type ? h("span", { class: "secondary" }, job.gpu_type) : null),
    h("td", { class: "num" }, job.priority),
    h("td", { title: fmtTime(job.created_at) }, fmtAgo(job.created_at)),
    h("td", { class: "num" }, runTime(job)),
  );
}

export async function render(ctx, page) {
  let status = "";
  let extra = []; // pages loaded with "Load more"
  let nextCursor = null;
  const tiles = h("div", { class: "tiles", id: "queue-tiles" });
  const body = h("div", { id: "queue-table" }, loading());
  const more = h("button", { type: "button", id: "load-more", hidden: true }, "Load more");
  const select = h("select", { id: "state-filter", "aria-label": "Filter by state" }, FILTERS.map(([v, label]) => h("option", { value: v }, label)));
  const updated = h("span", { class: "hint", id: "queue-updated" });

  const draw = (jobs) => {
    const count = (s) => jobs.filter((j) => j.status === s).length;
    replace(
      tiles,
      tile("Queued", count("queued"), "waiting for GPUs"),
      tile("Running", count("running") + count("scheduled"), "holding GPUs"),
      tile("Succeeded", count("succeeded"), "of the jobs shown"),
      tile("Failed", count("failed") + count("timed_out"), "failed or timed out"),
    );
    replace(body, table(COLUMNS, jobs.map(jobRow), { emptyText: status ? "No job in this state." : "No jobs yet. Submit one with the CLI or POST /v1/jobs." }));
    more.hidden = !nextCursor;
    updated.textContent = `updated ${fmtTime(new Date())}`;
  };

  const refresh = async () => {
    try {
      const first = await ctx.api.json("/v1/jobs", { params: { limit: PAGE, status }, signal: ctx.signal });
      if (!extra.length) nextCursor = first.next_cursor;
      const seen = new Set(first.jobs.map((j) => j.id));
      draw([...first.jobs, ...extra.filter((j) => !seen.has(j.id))]);
    } catch (err) {
      if (!ctx.signal.aborted) replace(body, errorNotice(err));
    }
  };

  select.addEventListener("change", () => {
    status = select.value;
    extra = [];
    refresh();
  });
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      const next = await ctx.api.json("/v1/jobs", { params: { limit: PAGE, status, cursor: nextCursor }, signal: ctx.signal });
      extra.push(...next.jobs);
      nextCursor = next.next_cursor;
      await refresh();
    } finally {
      more.disabled = false;
    }
  });

  page.append(
    pageHead("Queue", "Your organization's jobs, newest first. Updates live from the event stream.", select),
    tiles,
    card("Jobs", { hint: updated, flush: true }, body),
    h("div", {}, more),
  );
  await refresh();
  return liveRefresh(ctx, refresh, { relevant: (ev) => String(ev.type || "").startsWith("gpufleet.job.") });
}
