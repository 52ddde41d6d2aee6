// Webhooks (GET /v1/webhooks) and their deliveries with every attempt (GET /v1/webhook-deliveries).

import { badge, card, errorNotice, fmtAgo, fmtNumber, fmtTime, h, loading, replace, shortId, table } from "../dom.js";
import { liveRefresh, pageHead } from "./live.js";

function webhookRow(w) {
  return h(
    "tr",
    { "data-webhook-id": w.id },
    h("td", { class: "url" }, w.url, w.description ? h("span", { class: "secondary" }, w.description) : null),
    h("td", {}, w.events.length ? w.events.map((e) => h("span", { class: "chip" }, e)) : h("span", { class: "chip" }, "every job event")),
    h("td", {}, badge(w.status)),
    h("td", { class: "num" }, w.consecutive_failures),
    h("td", { class: "num" }, `${fmtNumber(w.error_rate * 100, 0)}%`),
    h("td", { title: fmtTime(w.last_used) }, fmtAgo(w.last_used)),
  );
}

function attemptsTable(log) {
  return h(
    "table",
    { class: "attempts" },
    h("thead", {}, h("tr", {}, h("th", {}, "#"), h("th", {}, "At"), h("th", {}, "Answer"), h("th", { class: "num" }, "Took"))),
    h(
      "tbody",
      {},
      log.map((a) =>
        h(
          "tr",
          {},
          h("td", {}, a.attempt),
          h("td", {}, fmtTime(a.at)),
          h("td", {}, a.response_status ? `HTTP ${a.response_status}` : "no response", a.error ? h("span", { class: "secondary" }, a.error) : null),
          h("td", { class: "num" }, `${a.duration_ms} ms`),
        ),
      ),
    ),
  );
}

function deliveryRow(d, openIds) {
  const attempts = d.attempt_log || [];
  return h(
    "tr",
    { "data-delivery-id": d.id },
    h("td", {}, h("span", { class: "mono" }, d.event_type), h("span", { class: "secondary mono", title: "webhook-id" }, d.id)),
    h("td", {}, d.job_id ? h("a", { href: `#/jobs/${encodeURIComponent(d.job_id)}`, class: "mono" }, shortId(d.job_id)) : "—"),
    h("td", { class: "url" }, d.url, h("span", { class: "secondary" }, d.webhook_id ? "organization webhook" : "the job's webhook_url")),
    h("td", {}, badge(d.status), d.status === "pending" && d.next_attempt_at ? h("span", { class: "secondary" }, `next ${fmtTime(d.next_attempt_at)}`) : null),
    h(
      "td",
      {},
      attempts.length
        ? h(
            "details",
            { open: openIds.has(d.id), ontoggle: (e) => (e.target.open ? openIds.add(d.id) : openIds.delete(d.id)) },
            h("summary", {}, `${d.attempts} attempt${d.attempts === 1 ? "" : "s"}`),
            attemptsTable(attempts),
          )
        : `${d.attempts} attempts`,
    ),
    h("td", { title: fmtTime(d.created_at) }, fmtAgo(d.created_at)),
  );
}

export async function render(ctx, page) {
  const hooksBox = h("div", { id: "webhooks" }, loading());
  const deliveriesBox = h("div", { id: "deliveries" }, loading());
  let filter = "";
  const openIds = new Set(); // attempt logs kept open across refreshes
  const select = h("select", { id: "delivery-filter", "aria-label": "Deliveries of" }, h("option", { value: "" }, "All deliveries"));
  select.addEventListener("change", () => {
    filter = select.value;
    refresh();
  });

  const refresh = async () => {
    try {
      const { webhooks } = await ctx.api.json("/v1/webhooks", { signal: ctx.signal });
      replace(
        hooksBox,
        table(
          [{ label: "URL" }, { label: "Events" }, { label: "Status" }, { label: "Failures in a row", num: true }, { label: "Error rate", num: true }, { label: "Last used" }],
          webhooks.map(webhookRow),
          { emptyText: "No webhook registered. Create one with POST /v1/webhooks." },
        ),
      );
      replace(
        select,
        h("option", { value: "" }, "All deliveries"),
        webhooks.map((w) => h("option", { value: w.id, selected: w.id === filter }, w.url)),
      );
    } catch (err) {
      if (!ctx.signal.aborted) replace(hooksBox, errorNotice(err));
    }
    try {
      const { deliveries } = await ctx.api.json("/v1/webhook-deliveries", { params: { limit: 100, webhook_id: filter }, signal: ctx.signal });
      replace(
        deliveriesBox,
        table([{ label: "Event" }, { label: "Job" }, { label: "To" }, { label: "Status" }, { label: "Attempts" }, { label: "Created" }], deliveries.map((d) => deliveryRow(d, openIds)), {
          emptyText: "No delivery yet.",
        }),
      );
    } catch (err) {
      if (!ctx.signal.aborted) replace(deliveriesBox, errorNotice(err));
    }
  };

  page.append(
    pageHead("Webhooks", "Signed deliveries (Standard Webhooks) of your organization's events, with every attempt."),
    card("Endpoints", { flush: true }, hooksBox),
    card("Deliveries", { flush: true, actions: select, hint: "newest first" }, deliveriesBox),
  );
  await refresh();
  // Deliveries follow events by a moment and are retried on their own schedule: poll as well.
  const stop = liveRefresh(ctx, refresh, { pollSeconds: 5, debounceMs: 1500 });
  const timer = setInterval(refresh, 10000);
  return () => {
    stop();
    clearInterval(timer);
  };
}
