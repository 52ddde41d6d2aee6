// The dashboard's shell: sign-in with an API key (kept in this tab's sessionStorage only), the top bar,
// and hash routing to the pages. Each page gets a context and returns a cleanup function.

import { Api, ApiError, session } from "./api.js";
import { h, replace } from "./dom.js";
import { LiveEvents } from "./events.js";
import * as costs from "./pages/costs.js";
import * as fleet from "./pages/fleet.js";
import * as job from "./pages/job.js";
import * as operator from "./pages/operator.js";
import * as queue from "./pages/queue.js";
import * as webhooks from "./pages/webhooks.js";

const ROUTES = [
  { pattern: /^#\/fleet$/, page: fleet, nav: "fleet" },
  { pattern: /^#\/queue$/, page: queue, nav: "queue" },
  { pattern: /^#\/jobs\/([0-9a-fA-F-]{1,64})$/, page: job, nav: "queue" },
  { pattern: /^#\/costs$/, page: costs, nav: "costs" },
  { pattern: /^#\/webhooks$/, page: webhooks, nav: "webhooks" },
];
const NAV = [
  ["queue", "Queue"],
  ["fleet", "Fleet"],
  ["costs", "Costs"],
  ["webhooks", "Webhooks"],
];
// An operator session (the operator token, refused by /v1/me, answered by /v1/admin/fleet) sees the
// whole fleet only: no tenant page, no event stream (the stream is a tenant's).
const OPERATOR_ROUTES = [{ pattern: /^#\/operator$/, page: operator, nav: "operator" }];
const OPERATOR_NAV = [["operator", "Operator: whole fleet"]];
const LIVE_LABELS = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  unavailable: "Polling",
  closed: "Disconnected",
};

const root = document.getElementById("app");
let current = null; // {api, events, me, cleanup}

function logo() {
  return h("img", { src: "/ui/favicon.svg", alt: "" });
}

function signOut(message) {
  session.key = null;
  if (current) {
    current.cleanup?.();
    current.events?.stop();
    current = null;
  }
  showSignIn(message);
}

function showSignIn(message) {
  const input = h("input", { id: "api-key", type: "password", name: "api-key", autocomplete: "off", spellcheck: "false", placeholder: "gpf_…", required: true });
  const error = h("div", { class: "error", id: "signin-error", role: "alert" }, message || "");
  const button = h("button", { class: "primary", type: "submit", id: "signin-submit" }, "Sign in");
  const form = h(
    "form",
    {
      id: "signin-form",
      onsubmit: async (e) => {
        e.preventDefault();
        const key = input.value.trim();
        if (!key) return;
        button.disabled = true;
        error.textContent = "";
        try {
          await start(key);
        } catch (err) {
          button.disabled = false;
          error.textContent =
            err instanceof ApiError && err.status === 401 ? "That key was not accepted (unknown, revoked or expired)." : `Could not sign in: ${err.message}`;
        }
      },
    },
    h("label", { for: "api-key" }, "API key"),
    input,
    button,
    error,
  );
  replace(
    root,
    h(
      "div",
      { class: "signin-wrap" },
      h(
        "div",
        { class: "signin", id: "signin" },
        h("div", { class: "brand" }, logo(), "gpufleet"),
        h("h1", {}, "Sign in"),
        h("p", {}, "Paste an API key of your organization (or the operator token, for the whole fleet). The dashboard reads the same REST API as any other client."),
        form,
        h("div", { class: "fine" }, "The key stays in this browser tab (session storage) and is sent only to this gateway, as an Authorization header. Closing the tab signs you out."),
      ),
    ),
  );
  input.focus();
}

async function start(key) {
  const api = new Api(key, { onUnauthorized: () => current && signOut("Your key is no longer accepted; sign in again.") });
  let me;
  try {
    me = await api.json("/v1/me"); // throws ApiError 401 for a bad key
  } catch (err) {
    if (!(err instanceof ApiError) || (err.status !== 401 && err.status !== 403)) throw err;
    if (!(await isOperator(api))) throw err;
    session.key = key;
    current = { api, events: null, me: null, operator: true, cleanup: null };
    renderShell();
    if (!OPERATOR_ROUTES.some((r) => r.pattern.test(window.location.hash))) window.location.hash = "#/operator";
    else route();
    return;
  }
  session.key = key;
  const events = new LiveEvents(api);
  current = { api, events, me, cleanup: null };
  renderShell();
  events.start();
  if (!ROUTES.some((r) => r.pattern.test(window.location.hash))) window.location.hash = "#/queue";
  else route();
}

/** Whether the credential is an operator's: /v1/admin/fleet answers 200 to the operator token only. */
async function isOperator(api) {
  try {
    await api.json("/v1/admin/fleet");
    return true;
  } catch (err) {
    if (err instanceof ApiError) return false;
    throw err;
  }
}

function renderOperatorShell() {
  const nav = h(
    "nav",
    { class: "nav", "aria-label": "Pages" },
    OPERATOR_NAV.map(([id, label]) => h("a", { href: `#/${id}`, "data-nav": id }, label)),
  );
  replace(
    root,
    h(
      "header",
      { class: "topbar" },
      h("a", { class: "brand", href: "#/operator" }, logo(), "gpufleet"),
      nav,
      h(
        "div",
        { class: "who" },
        h("span", { class: "org", id: "operator-session" }, "Operator"),
        h("button", { class: "ghost", id: "sign-out", type: "button", onclick: () => signOut() }, "Sign out"),
      ),
    ),
    h("main", { class: "main", id: "page" }),
  );
}

function renderShell() {
  if (current.operator) {
    renderOperatorShell();
    return;
  }
  const { me, events } = current;
  const live = h("span", { class: "live", id: "live-state", title: "The event stream GET /v1/events" });
  events.onState((state) => {
    live.dataset.state = state;
    live.textContent = LIVE_LABELS[state] || state;
  });
  const nav = h(
    "nav",
    { class: "nav", "aria-label": "Pages" },
    NAV.map(([id, label]) => h("a", { href: `#/${id}`, "data-nav": id }, label)),
  );
  replace(
    root,
    h(
      "header",
      { class: "topbar" },
      h("a", { class: "brand", href: "#/queue" }, logo(), "gpufleet"),
      nav,
      h(
        "div",
        { class: "who" },
        live,
        h("span", { class: "org", id: "org-name" }, me.organization.name),
        h("span", { class: "role", title: "Your role in this organization" }, me.principal.role),
        h("button", { class: "ghost", id: "sign-out", type: "button", onclick: () => signOut() }, "Sign out"),
      ),
    ),
    h("main", { class: "main", id: "page" }),
  );
}

function route() {
  if (!current) return;
  const hash = window.location.hash;
  const home = current.operator ? "#/operator" : "#/queue";
  const match = (current.operator ? OPERATOR_ROUTES : ROUTES).map((r) => ({ r, m: r.pattern.exec(hash) })).find((x) => x.m);
  if (!match) {
    window.location.hash = home;
    return;
  }
  current.cleanup?.();
  current.cleanup = null;
  for (const a of document.querySelectorAll(".nav a")) a.classList.toggle("active", a.dataset.nav === match.r.nav);
  const page = document.getElementById("page");
  page.replaceChildren();
  const controller = new AbortController();
  const ctx = { api: current.api, events: current.events, me: current.me, signal: controller.signal };
  let pageCleanup = null;
  Promise.resolve(match.r.page.render(ctx, page, ...match.m.slice(1)))
    .then((fn) => {
      if (controller.signal.aborted) fn?.();
      else pageCleanup = fn;
    })
    .catch((err) => {
      if (!controller.signal.aborted) console.warn("page failed", err);
    });
  current.cleanup = () => {
    controller.abort();
    pageCleanup?.();
  };
  window.scrollTo(0, 0);
}

window.addEventListener("hashchange", route);

const saved = session.key;
if (saved) {
  start(saved).catch((err) => showSignIn(err instanceof ApiError && err.status === 401 ? "Your key is no longer accepted; sign in again." : `Could not reach the gateway: ${err.message}`));
} else {
  showSignIn();
}
