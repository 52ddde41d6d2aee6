// DOM building without HTML strings: every piece of data becomes a text node or an attribute value, so
// nothing a tenant typed (job names, commands, output, URLs) is ever parsed as markup. The page's
// Content-Security-Policy requires Trusted Types, so an innerHTML with a string would throw anyway.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (name === "text") el.textContent = String(value);
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "style" || name.startsWith("on")) throw new Error(`refusing attribute ${name}`);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h("td", {class: "num"}, "12"). Strings are text, never markup. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, same rules. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// ------------------------------------------------------------------ formatting

const pad = (n) => String(n).padStart(2, "0");

export function fmtTime(value) {
  if (!value) return "—";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtClock(value) {
  const d = new Date(value);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function fmtAgo(value, now = Date.now()) {
  if (!value) return "never";
  const seconds = Math.round((now - new Date(value).getTime()) / 1000);
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

export function fmtDuration(totalSeconds) {
  const t = Math.max(0, Math.round(Number(totalSeconds) || 0));
  if (t < 60) return `${t}s`;
  const m = Math.floor(t / 60);
  if (m < 60) return `${m}m ${pad(t % 60)}s`;
  const hours = Math.floor(m / 60);
  if (hours < 48) return `${hours}h ${pad(m % 60)}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

/** Money arrives as a decimal string; it is shown rounded, never computed with. */
export function fmtMoney(value, currency = "USD") {
  if (value === null || value === undefined || value === "") return "—";
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  const digits = n !== 0 && Math.abs(n) < 1 ? 4 : 2;
  const symbol = currency === "USD" ? "$" : `${currency} `;
  return `${n < 0 ? "-" : ""}${symbol}${Math.abs(n).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })}`;
}

export function fmtNumber(value, digits = 0) {
  const n = Number(value);
  if (!Number.isFinite(n)) return "—";
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtMb(mb) {
  const n = Number(mb) || 0;
  return n >= 1024 ? `${fmtNumber(n / 1024, n % 1024 ? 1 : 0)} GB` : `${n} MB`;
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : "—";
}

// ------------------------------------------------------------------ shared components

const STATE_TONES = {
  queued: "warn",
  scheduled: "info",
  running: "info",
  succeeded: "ok",
  failed: "bad",
  cancelled: "",
  timed_out: "bad",
  requeued: "warn",
  active: "ok",
  disabled: "bad",
  delivered: "ok",
  pending: "warn",
  online: "ok",
  offline: "bad",
  draining: "warn",
  available: "ok",
  free: "ok",
  allocated: "info",
  unhealthy: "bad",
  healthy: "ok",
};

export function tone(state) {
  return STATE_TONES[state] ?? "";
}

export function badge(state, label) {
  return h("span", { class: ["badge", tone(state)], "data-state": state }, label ?? String(state).replace("_", " "));
}

export function card(title, { hint, actions, flush } = {}, ...body) {
  const header = h("header", {}, h("h2", {}, title), h("div", { class: "actions" }, hint ? h("span", { class: "hint" }, hint) : null, actions || null));
  return h("section", { class: "card" }, header, h("div", { class: ["body", flush && "flush"] }, ...body));
}

export function tile(label, value, note) {
  return h("div", { class: "tile" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value), note ? h("div", { class: "note" }, note) : null);
}

export function notAvailable(what, detail) {
  return h(
    "div",
    { class: "notice unavailable", "data-unavailable": what },
    h("div", {}, h("strong", {}, "Not available on this gateway. "), `${what} answered 404: this gateway version does not serve it yet.`, detail ? h("div", {}, detail) : null),
  );
}

export function errorNotice(err) {
  return h("div", { class: "notice error" }, h("div", {}, h("strong", {}, "Could not load. "), err?.message || String(err)));
}

export function empty(text) {
  return h("div", { class: "empty" }, text);
}

export function loading() {
  return h("div", { class: "loading" }, "Loading…");
}

export function table(columns, rows, { emptyText = "Nothing here yet." } = {}) {
  if (!rows.length) return empty(emptyText);
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.label)))),
    h("tbody", {}, rows),
  );
}

let toastTimer = null;
export function toast(message) {
  document.querySelector(".toast")?.remove();
  const el = h("div", { class: "toast", role: "status" }, message);
  document.body.append(el);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.remove(), 5000);
}
