// One job: its facts, the timeline of its state changes, its output (GET /v1/jobs/{id}/logs, followed
// while it runs), its cost and the webhook deliveries about it. Live from the event stream.

import { ApiError, optional } from "../api.js";
import { badge, card, empty, errorNotice, fmtDuration, fmtMb, fmtMoney, fmtNumber, fmtTime, h, loading, notAvailable, replace, toast, tone } from "../dom.js";
import { eventJobId } from "../events.js";
import { liveRefresh, pageHead } from "./live.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled", "timed_out"]);

function fact(label, value) {
  return [h("dt", {}, label), h("dd", {}, value ?? "—")];
}

function facts(job) {
  const gpus = job.nodes > 1 ? `${job.gpu_count} per node × ${job.nodes} nodes` : `${job.gpu_count}`;
  return h(
    "dl",
    { class: "facts", id: "job-facts" },
    fact("GPUs", gpus),
    fact("GPU type", job.gpu_type || "any"),
    fact("GPU memory", job.gpu_memory_mb ? fmtMb(job.gpu_memory_mb) : "any"),
    fact("Priority", job.priority),
    fact("Attempt", job.attempt),
    fact("Exit code", job.exit_code ?? "—"),
    fact("Submitted", fmtTime(job.created_at)),
    fact("Started", fmtTime(job.started_at)),
    fact("Finished", fmtTime(job.finished_at)),
    fact("Time limit", job.time_limit_seconds ? fmtDuration(job.time_limit_seconds) : "none"),
    fact("Queue position", job.queue_position ?? "—"),
    fact("Estimated start", job.estimated_start ? fmtTime(job.estimated_start) : "—"),
    fact("Nodes", job.placements?.length ? job.placements.map((p) => p.node_id).join(", ") : job.node_id || "—"),
    fact("Webhook URL", job.webhook_url || "—"),
  );
}

function timeline(job) {
  const items = (job.history || []).map((change, i, all) => {
    const prev = i ? all[i - 1].at : null;
    const after = prev && change.at ? ` · ${fmtDuration((new Date(change.at) - new Date(prev)) / 1000)} after ${all[i - 1].status.replace("_", " ")}` : "";
    return h(
      "li",
      { "data-tone": tone(change.status) || "idle", "data-status": change.status },
      h("div", { class: "what" }, change.status.replace("_", " ")),
      h("div", { class: "when" }, fmtTime(change.at), after),
      change.reason ? h("div", { class: "why" }, change.reason) : null,
    );
  });
  if (!items.length) return empty("No state changes recorded yet.");
  return h("ol", { class: "timeline", id: "job-timeline" }, items);
}

function costView(cost) {
  const attempts = cost.attempts || [];
  return h(
    "div",
    { id: "job-cost" },
    h("div", { class: "money" }, fmtMoney(cost.total_cost, cost.currency)),
    h(
      "dl",
      { class: "kv" },
      h("dt", {}, "GPU time held"),
      h("dd", {}, fmtDuration(cost.held_seconds)),
      h("dt", {}, "GPUs"),
      h("dd", {}, cost.gpu_count),
      h("dt", {}, "Gross"),
      h("dd", {}, fmtMoney(cost.gross_cost, cost.currency)),
      h("dt", {}, "Credit"),
      h("dd", {}, fmtMoney(cost.credit, cost.currency)),
      h("dt", {}, "Recorded"),
      h("dd", {}, fmtTime(cost.recorded_at)),
    ),
    attempts.length > 1
      ? h(
          "table",
          {},
          h("thead", {}, h("tr", {}, h("th", {}, "Attempt"), h("th", {}, "Outcome"), h("th", { class: "num" }, "Net"))),
          h(
            "tbody",
            {},
            attempts.map((a) => h("tr", {}, h("td", {}, a.attempt), h("td", {}, a.outcome || "—"), h("td", { class: "num" }, fmtMoney(a.net_cost, cost.currency)))),
          ),
        )
      : null,
  );
}

/** Follows GET /v1/jobs/{id}/logs into `pre`; returns a stop function. */
function followOutput(ctx, jobId, pre, meta, getJob, onUnavailable) {
  const controller = new AbortController();
  const signal = AbortSignal.any ? AbortSignal.any([ctx.signal, controller.signal]) : controller.signal;
  const decoder = new TextDecoder();
  let offset = 0;
  let stopped = false;

  const appendText = (text) => {
    if (!text) return;
    const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
    pre.append(document.createTextNode(text));
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  };
  const describe = (response, following) => {
    const size = Number(response.headers.get("GpuFleet-Output-Size") || offset);
    const parts = [`${fmtNumber(size)} bytes`];
    if (response.headers.get("GpuFleet-Output-Truncated") === "true") parts.push("truncated: the head and the tail are kept, with a marker where output was cut");
    parts.push(following ? "following…" : "complete");
    meta.textContent = parts.join(" · ");
    pre.dataset.complete = following ? "false" : "true";
  };

  (async () => {
    let delay = 500;
    while (!stopped && !signal.aborted) {
      const job = getJob();
      const follow = !TERMINAL.has(job.status);
      let response;
      try {
        response = await ctx.api.raw(`/v1/jobs/${encodeURIComponent(jobId)}/logs`, { params: { offset, follow: follow ? "true" : null }, signal });
      } catch {
        if (signal.aborted) return;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 5000);
        continue;
      }
      if (response.status === 404) {
        meta.textContent = "";
        onUnavailable();
        return;
      }
      if (!response.ok) {
        meta.textContent = `output could not be read (HTTP ${response.status})`;
        return;
      }
      const complete = () => response.headers.get("GpuFleet-Output-Complete") === "true";
      describe(response, !complete());
      const reader = response.body.getReader();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          offset += value.byteLength;
          appendText(decoder.decode(value, { stream: true }));
        }
        appendText(decoder.decode());
      } catch {
        if (signal.aborted) return;
      }
      if (complete()) {
        describe(response, false);
        return;
      }
      // Not complete yet: the job is still running (or its last output is on its way); ask again.
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 3000);
    }
  })();
  return () => {
    stopped = true;
    controller.abort();
  };
}

export async function render(ctx, page, jobId) {
  let job;
  try {
    job = await ctx.api.json(`/v1/jobs/${encodeURIComponent(jobId)}`, { signal: ctx.signal });
  } catch (err) {
    if (err instanceof ApiError && err.notFound) {
      page.append(pageHead("Job not found"), card("Nothing here", {}, empty("No job with this id in your organization.")));
    } else page.append(errorNotice(err));
    return null;
  }

  const head = h("div", { id: "job-head" });
  const factsBox = h("div");
  const timelineBox = h("div");
  const costBox = h("div", {}, loading());
  const deliveriesBox = h("div", {}, loading());
  const commandBox = h("pre", { class: "command", id: "job-command" });
  const reasonBox = h("div");
  const outputMeta = h("span", { class: "output-meta", id: "output-meta" }, "loading…");
  const output = h("pre", { class: "output", id: "job-output", "data-complete": "false" });
  let tail = null; // the output_tail view, when the logs route is not served

  const cancel = h("button", { type: "button", class: "danger", id: "cancel-job" }, "Cancel job");
  cancel.addEventListener("click", async () => {
    if (!window.confirm("Cancel this job?")) return;
    cancel.disabled = true;
    try {
      job = await ctx.api.post(`/v1/jobs/${encodeURIComponent(jobId)}/cancel`);
      draw();
    } catch (err) {
      toast(`Could not cancel: ${err.message}`);
      cancel.disabled = false;
    }
  });

  const draw = () => {
    replace(
      head,
      h("div", { class: "crumbs" }, h("a", { href: "#/queue" }, "Queue"), " / ", h("span", { class: "mono" }, job.id)),
      pageHead(
        h("span", { class: "title-row" }, h("span", { id: "job-name" }, job.name || "(unnamed job)"), badge(job.status)),
        null,
        TERMINAL.has(job.status) ? null : cancel,
      ),
    );
    commandBox.textContent = job.command;
    if (tail) {
      tail.textContent = job.output_tail || (TERMINAL.has(job.status) ? "(no output kept)" : "");
      tail.dataset.complete = String(TERMINAL.has(job.status));
    }
    replace(factsBox, facts(job));
    replace(timelineBox, timeline(job));
    replace(
      reasonBox,
      job.status === "queued" && job.pending_reason
        ? h("div", { class: "notice", id: "pending-reason" }, h("div", {}, h("strong", {}, "Waiting: "), job.pending_reason.message, " ", h("span", { class: "chip" }, job.pending_reason.code)))
        : null,
    );
  };

  const loadCost = async () => {
    try {
      const cost = await ctx.api.json(`/v1/jobs/${encodeURIComponent(jobId)}/cost`, { signal: ctx.signal });
      replace(costBox, costView(cost));
    } catch (err) {
      if (err instanceof ApiError && err.notFound) {
        replace(costBox, empty(TERMINAL.has(job.status) ? "Not recorded yet: billing records it moments after the job ends." : "Billed when the job ends, by the GPU-second."));
      } else if (!ctx.signal.aborted) replace(costBox, errorNotice(err));
    }
  };
  const loadDeliveries = async () => {
    try {
      const { deliveries } = await ctx.api.json("/v1/webhook-deliveries", { params: { job_id: jobId, limit: 20 }, signal: ctx.signal });
      replace(
        deliveriesBox,
        deliveries.length
          ? h(
              "table",
              {},
              h("tbody", {}, deliveries.map((d) => h("tr", {}, h("td", {}, d.event_type, h("span", { class: "secondary" }, fmtTime(d.created_at))), h("td", {}, badge(d.status)), h("td", { class: "num" }, `${d.attempts} attempt${d.attempts === 1 ? "" : "s"}`)))),
            )
          : empty("No webhook deliveries about this job."),
      );
    } catch (err) {
      if (!ctx.signal.aborted) replace(deliveriesBox, errorNotice(err));
    }
  };

  page.append(
    head,
    reasonBox,
    h(
      "div",
      { class: "job-layout" },
      h(
        "div",
        {},
        card("Command", {}, commandBox),
        card("Output", { hint: outputMeta, flush: true }, output),
        card("Details", {}, factsBox),
      ),
      h("div", {}, card("Timeline", {}, timelineBox), card("Cost", {}, costBox), card("Webhook deliveries", {}, deliveriesBox)),
    ),
  );
  draw();
  loadCost();
  loadDeliveries();
  const stopOutput = followOutput(ctx, jobId, output, outputMeta, () => job, () => {
    // This gateway has no full output yet: show the tail the job itself keeps, redrawn with the job.
    tail = h("pre", { class: "output", id: "job-output", "data-complete": String(TERMINAL.has(job.status)) });
    output.replaceWith(h("div", {}, h("div", { class: "body" }, notAvailable("GET /v1/jobs/{id}/logs", "Below: the last part of the output kept with the job.")), tail));
    draw();
  });

  const refresh = async () => {
    job = await ctx.api.json(`/v1/jobs/${encodeURIComponent(jobId)}`, { signal: ctx.signal });
    draw();
    if (TERMINAL.has(job.status)) {
      await loadCost();
      await loadDeliveries();
    }
  };
  const stopLive = liveRefresh(ctx, refresh, { relevant: (ev) => eventJobId(ev) === jobId });
  return () => {
    stopOutput();
    stopLive();
  };
}
