// The operator's whole-fleet view (GET /v1/admin/fleet, operator token only): every node of every
// organization with its GPUs, their state and the job (and organization) holding each. Text only.

import { badge, errorNotice, fmtAgo, fmtMb, h, loading, replace, shortId, table } from "../dom.js";
import { pageHead } from "./live.js";

const REFRESH_MS = 5000;

function holderCell(holder) {
  if (!holder) return h("td", {}, "—");
  return h(
    "td",
    { class: "holder", "data-organization-id": holder.organization_id, "data-job-id": holder.job_id },
    h("span", { class: "mono", title: holder.organization_id }, `org ${shortId(holder.organization_id)}`),
    " · ",
    h("span", { class: "mono", title: holder.job_id }, `job ${holder.job_id}`),
  );
}

function gpuRow(gpu) {
  return h(
    "tr",
    { "data-gpu-id": gpu.id, "data-status": gpu.status },
    h("td", { class: "num" }, String(gpu.index)),
    h("td", {}, gpu.gpu_type),
    h("td", { class: "num" }, fmtMb(gpu.memory_total_mb)),
    h("td", {}, badge(gpu.status)),
    holderCell(gpu.holder),
  );
}

function nodeCard(node) {
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
        h("span", {}, node.provider || "own hardware", node.is_spot ? " · spot" : ""),
        h(
          "span",
          { class: "dedicated", title: node.organization_id || "" },
          node.organization_id ? `dedicated to org ${node.organization_id}` : "shared pool",
        ),
        h("span", {}, `heartbeat ${fmtAgo(node.last_heartbeat)}`),
      ),
      table(
        [{ label: "GPU", num: true }, { label: "Type" }, { label: "Memory", num: true }, { label: "State" }, { label: "Holder" }],
        (node.gpus || []).map(gpuRow),
        { emptyText: "No GPUs." },
      ),
    ),
  );
}

export async function render(ctx, page) {
  const box = h("div", { id: "operator-nodes" }, loading());
  replace(page, pageHead("Operator: whole fleet", "Every node of every organization, its GPUs and who holds them."), box);
  let timer = null;
  const load = async () => {
    try {
      const fleet = await ctx.api.json("/v1/admin/fleet", { signal: ctx.signal });
      if (ctx.signal.aborted) return;
      replace(box, fleet.nodes.length ? fleet.nodes.map(nodeCard) : h("div", { class: "empty" }, "No nodes yet."));
    } catch (err) {
      if (!ctx.signal.aborted) replace(box, errorNotice(err));
    }
    if (!ctx.signal.aborted) timer = setTimeout(load, REFRESH_MS);
  };
  await load();
  return () => clearTimeout(timer);
}
