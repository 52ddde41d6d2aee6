// Costs: by day and by GPU type (GET /v1/costs/summary, running jobs' cost so far included) as charts,
// and the recorded costs of recent jobs (GET /v1/costs).

import { optional } from "../api.js";
import { barChart, hbarChart } from "../charts.js";
import { card, errorNotice, fmtDuration, fmtMoney, fmtNumber, fmtTime, h, loading, notAvailable, replace, shortId, table, tile } from "../dom.js";
import { liveRefresh, pageHead, segmented } from "./live.js";

const RANGES = [
  ["7", "7 days"],
  ["30", "30 days"],
  ["90", "90 days"],
];

function rangeParams(days) {
  const to = new Date();
  const from = new Date(to.getTime() - Number(days) * 86400 * 1000);
  return { from: from.toISOString(), to: to.toISOString() };
}

/** Every day of the range, so that a day without cost shows as an empty bar rather than a gap. */
function fillDays(groups, from, to) {
  const byKey = new Map(groups.map((g) => [g.key, g]));
  const days = [];
  const d = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate()));
  for (; d <= to; d.setUTCDate(d.getUTCDate() + 1)) {
    const key = d.toISOString().slice(0, 10);
    days.push(byKey.get(key) || { key, cost: "0", running_cost: "0", gpu_seconds: 0, jobs: 0 });
  }
  for (const g of groups) if (!days.some((x) => x.key === g.key)) days.push(g);
  return days;
}

function settled(group) {
  // `cost` includes the running cost so far; the chart stacks the two parts.
  return Math.max(0, Number(group.cost) - Number(group.running_cost || 0));
}

export async function render(ctx, page) {
  let days = "30";
  const tiles = h("div", { class: "tiles", id: "cost-tiles" });
  const byDay = h("div", { id: "cost-by-day" }, loading());
  const byType = h("div", { id: "cost-by-type" }, loading());
  const recent = h("div", { id: "recent-costs" }, loading());

  const refresh = async () => {
    const range = rangeParams(days);
    const params = { ...range, include_running: "true" };
    try {
      const [day, type] = await Promise.all([
        optional(() => ctx.api.json("/v1/costs/summary", { params: { ...params, group_by: "day" }, signal: ctx.signal })),
        optional(() => ctx.api.json("/v1/costs/summary", { params: { ...params, group_by: "gpu_type" }, signal: ctx.signal })),
      ]);
      if (day.unavailable) {
        replace(tiles);
        replace(byDay, notAvailable("GET /v1/costs/summary", "The recorded costs of recent jobs are below."));
        replace(byType, notAvailable("GET /v1/costs/summary"));
      } else {
        const summary = day.value;
        const currency = summary.currency;
        const total = summary.total || {};
        const jobs = summary.groups.reduce((n, g) => n + (g.jobs || 0), 0);
        replace(
          tiles,
          tile("Total", fmtMoney(total.cost, currency), `${RANGES.find((r) => r[0] === days)[1]}, running jobs included`),
          tile("Running jobs so far", fmtMoney(total.running_cost, currency), "not final until they end"),
          tile("GPU hours", fmtNumber((total.gpu_seconds || 0) / 3600, 1), `${fmtDuration(total.gpu_seconds)} of GPU time`),
          tile("Jobs", fmtNumber(jobs), "that held GPUs"),
        );
        const groups = fillDays(summary.groups, new Date(summary.from), new Date(summary.to));
        replace(
          byDay,
          h("div", { class: "legend" }, h("span", {}, h("span", { class: "swatch cost" }), "Settled"), h("span", {}, h("span", { class: "swatch running" }), "Running, so far")),
          barChart(
            groups.map((g) => ({
              label: g.key.slice(5),
              values: [settled(g), Number(g.running_cost || 0)],
              title: `${g.key}: ${fmtMoney(g.cost, currency)} (${g.jobs} jobs, ${fmtDuration(g.gpu_seconds)} GPU time)`,
            })),
            { format: (v) => fmtMoney(v, currency) },
          ),
        );
        const types = type.value?.groups || [];
        replace(
          byType,
          types.length
            ? hbarChart(
                types.map((g) => ({ label: g.key || "unknown", value: Number(g.cost), title: `${g.key}: ${fmtMoney(g.cost, currency)}, ${fmtDuration(g.gpu_seconds)} GPU time, ${g.jobs} jobs` })),
                { format: (v) => fmtMoney(v, currency) },
              )
            : h("div", { class: "empty" }, "No GPU time in this range."),
        );
      }
    } catch (err) {
      if (!ctx.signal.aborted) replace(byDay, errorNotice(err));
    }
    try {
      const list = await ctx.api.json("/v1/costs", { params: { limit: 50 }, signal: ctx.signal });
      replace(
        recent,
        table(
          [{ label: "Job" }, { label: "Attempts" }, { label: "GPUs", num: true }, { label: "GPU time", num: true }, { label: "Recorded" }, { label: "Cost", num: true }],
          list.costs.map((c) =>
            h(
              "tr",
              { "data-job-id": c.job_id },
              h("td", {}, h("a", { href: `#/jobs/${encodeURIComponent(c.job_id)}`, class: "mono" }, shortId(c.job_id))),
              h("td", {}, (c.attempts || []).map((a) => a.outcome || `#${a.attempt}`).join(", ") || "1"),
              h("td", { class: "num" }, c.gpu_count),
              h("td", { class: "num" }, fmtDuration(c.held_seconds)),
              h("td", {}, fmtTime(c.recorded_at)),
              h("td", { class: "num" }, fmtMoney(c.total_cost, c.currency)),
            ),
          ),
          { emptyText: "No job has been billed yet." },
        ),
      );
    } catch (err) {
      if (!ctx.signal.aborted) replace(recent, errorNotice(err));
    }
  };

  page.append(
    pageHead("Costs", "What your organization's GPU time cost: price per GPU-hour × GPUs × seconds held.", segmented(RANGES, days, (v) => {
      days = v;
      refresh();
    })),
    tiles,
    h("div", { class: "grid two" }, card("By day", { hint: "UTC days" }, byDay), card("By GPU type", {}, byType)),
    card("Recent job costs", { flush: true }, recent),
  );
  await refresh();
  return liveRefresh(ctx, refresh, {
    relevant: (ev) => String(ev.type || "").startsWith("gpufleet.cost."),
    pollSeconds: 15,
    debounceMs: 1000,
  });
}
