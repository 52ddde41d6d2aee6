// The fleet the organization can use: nodes and their GPUs with state and health (GET /v1/nodes, or
// the GPU list where nodes are not served), and a utilization heatmap (GET /v1/utilization/series).

import { optional } from "../api.js";
import { areaChart, hbarChart, heatLegend, heatmap } from "../charts.js";
import { badge, card, empty, errorNotice, fmtAgo, fmtMb, fmtNumber, fmtTime, h, loading, notAvailable, replace, shortId, tile } from "../dom.js";
import { liveRefresh, pageHead, segmented } from "./live.js";

const WINDOWS = [
  ["1", "1 hour"],
  ["6", "6 hours"],
  ["24", "24 hours"],
];

function gpuTile(gpu) {
  const status = gpu.status;
  return h(
    "div",
    { class: "gpu", "data-status": status, "data-gpu-id": gpu.id },
    h("div", { class: "gpu-title" }, `GPU ${gpu.index} · ${gpu.gpu_type}`),
    h("div", { class: "gpu-sub" }, fmtMb(gpu.memory_mb ?? gpu.memory_total_mb)),
    h("div", {}, badge(status), " ", gpu.health && gpu.health !== status ? badge(gpu.health) : null),
    gpu.job_id ? h("div", { class: "gpu-sub" }, "job ", h("a", { href: `#/jobs/${encodeURIComponent(gpu.job_id)}`, class: "mono" }, shortId(gpu.job_id))) : null,
  );
}

function nodeCard(node) {
  const labels = Object.entries(node.labels || {});
  return h(
    "section",
    { class: "card node", "data-node-id": node.id },
    h("header", {}, h("h2", {}, node.hostname), badge(node.status)),
    h(
      "div",
      { class: "body" },
      h(
        "div",
        { class: "meta" },
        h("span", {}, node.provider || "own hardware", node.spot ? " · spot" : ""),
        node.cpu_cores ? h("span", {}, `${node.cpu_cores} CPU cores`) : null,
        node.ram_mb ? h("span", {}, `${fmtMb(node.ram_mb)} RAM`) : null,
        h("span", { title: fmtTime(node.last_heartbeat_at) }, `heartbeat ${fmtAgo(node.last_heartbeat_at)}`),
      ),
      labels.length ? h("div", {}, labels.map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`))) : null,
      h("div", { class: "gpus" }, (node.gpus || []).map(gpuTile)),
    ),
  );
}

/** Where /v1/nodes is not served: the GPUs of /v1/gpus, grouped by the node they are on. */
function nodesFromGpus(gpus) {
  const nodes = new Map();
  for (const g of gpus) {
    if (!nodes.has(g.node_id)) {
      nodes.set(g.node_id, { id: g.node_id, hostname: g.node_name, provider: g.provider, spot: g.is_spot, status: null, gpus: [] });
    }
    nodes.get(g.node_id).gpus.push({ ...g, memory_mb: g.memory_total_mb, job_id: null });
  }
  return [...nodes.values()];
}

function fallbackNodeCard(node) {
  const c = nodeCard({ ...node, last_heartbeat_at: null, status: "unknown" });
  c.querySelector("header .badge")?.remove();
  c.querySelector(".meta span[title]")?.remove();
  return c;
}

export async function render(ctx, page) {
  let hours = "1";
  const tiles = h("div", { class: "tiles", id: "fleet-tiles" });
  const nodesBox = h("div", { id: "fleet-nodes" }, loading());
  const heatBox = h("div", { id: "utilization-heatmap" }, loading());
  const aggregateBox = h("div", { id: "utilization-aggregate" });

  const loadNodes = async () => {
    try {
      const [gpus, nodes] = await Promise.all([
        ctx.api.json("/v1/gpus", { signal: ctx.signal }),
        optional(() => ctx.api.all("/v1/nodes", "items", { signal: ctx.signal })),
      ]);
      const list = gpus.gpus;
      const count = (...states) => list.filter((g) => states.includes(g.status)).length;
      const types = [...new Set(list.map((g) => g.gpu_type))];
      replace(
        tiles,
        tile("GPUs", list.length, types.join(", ") || "none"),
        tile("Available", count("available"), "free to schedule"),
        tile("Allocated", count("allocated"), "running jobs"),
        tile("Unavailable", count("draining", "unhealthy", "offline"), "draining, unhealthy or offline"),
        tile("Nodes", nodes.unavailable ? new Set(list.map((g) => g.node_id)).size : nodes.value.length, "shared or dedicated to you"),
      );
      if (nodes.unavailable) {
        replace(
          nodesBox,
          notAvailable("GET /v1/nodes", "Showing the GPUs of GET /v1/gpus by node, without node state and heartbeats."),
          h("div", { class: "nodes" }, nodesFromGpus(list).map(fallbackNodeCard)),
        );
      } else {
        replace(nodesBox, nodes.value.length ? h("div", { class: "nodes" }, nodes.value.map(nodeCard)) : empty("No node is registered."));
      }
    } catch (err) {
      if (!ctx.signal.aborted) replace(nodesBox, errorNotice(err));
    }
  };

  const loadUtilization = async () => {
    const to = new Date();
    const from = new Date(to.getTime() - Number(hours) * 3600 * 1000);
    try {
      const series = await optional(() =>
        ctx.api.json("/v1/utilization/series", { params: { from: from.toISOString(), to: to.toISOString() }, signal: ctx.signal }),
      );
      if (series.unavailable) {
        // The older per-GPU averages stay available.
        const avg = await ctx.api.json("/v1/utilization", { params: { hours: Math.max(1, Number(hours)) }, signal: ctx.signal });
        replace(
          heatBox,
          notAvailable("GET /v1/utilization/series", `Below: each GPU's average utilization over the last ${hours} h while it ran your jobs (GET /v1/utilization).`),
          avg.gpus.length
            ? hbarChart(
                avg.gpus.map((g) => ({ label: `${g.gpu_name || shortId(g.gpu_id)}`, value: g.avg_utilization, title: `${g.gpu_type}: average ${fmtNumber(g.avg_utilization, 1)}%, peak ${fmtNumber(g.max_utilization, 1)}%, ${g.samples} samples` })),
                { width: 1160, format: (v) => `${fmtNumber(v, 1)}%` },
              )
            : empty("No GPU ran your jobs in this window."),
        );
        replace(aggregateBox);
        return;
      }
      const data = series.value;
      const rows = data.series.map((sr) => ({
        label: `${sr.gpu_type} · ${shortId(sr.gpu_id)}`,
        points: sr.points.map((p) => ({ t: p.t, v: p.utilization, title: `${fmtTime(p.t)} · ${fmtNumber(p.utilization * 100, 0)}% · ${fmtMb(p.memory_used_mb || 0)} used` })),
      }));
      replace(
        heatBox,
        rows.length
          ? h(
              "div",
              { class: "chart-block" },
              h("div", { class: "chart-caption" }, "Per GPU"),
              h("div", { class: "legend" }, heatLegend(), h("span", {}, `one cell = ${data.step_seconds} s; grey = no sample`)),
              heatmap(rows, { from: data.from, to: data.to, step: data.step_seconds }),
            )
          : empty("No GPU ran your jobs in this window."),
      );
      const agg = data.aggregate?.points || [];
      replace(
        aggregateBox,
        agg.length
          ? h(
              "div",
              { class: "chart-block" },
              h("div", { class: "chart-caption" }, "All your GPUs, average"),
              areaChart(agg.map((p) => ({ t: p.t, v: p.utilization })), { from: data.from, to: data.to }),
            )
          : null,
      );
    } catch (err) {
      if (!ctx.signal.aborted) replace(heatBox, errorNotice(err));
    }
  };

  page.append(
    pageHead("Fleet", "Nodes and GPUs your organization can use: shared ones and those dedicated to you."),
    tiles,
    card(
      "Utilization",
      {
        hint: "while the GPUs ran your jobs",
        actions: segmented(WINDOWS, hours, (v) => {
          hours = v;
          loadUtilization();
        }),
      },
      aggregateBox,
      heatBox,
    ),
    h("h3", { class: "section-title" }, "Nodes"),
    nodesBox,
  );
  await Promise.all([loadNodes(), loadUtilization()]);
  const stopLive = liveRefresh(ctx, loadNodes, { relevant: (ev) => /^gpufleet\.job\.(scheduled|started|succeeded|failed|cancelled|timed_out|requeued)$/.test(ev.type), pollSeconds: 10, debounceMs: 800 });
  const timer = setInterval(loadUtilization, 30000);
  return () => {
    stopLive();
    clearInterval(timer);
  };
}
