// Keeping a page current: refresh when the event stream says something relevant happened, and poll
// instead while the stream is not live (not served by this gateway, or reconnecting).

import { h } from "../dom.js";

export function liveRefresh(ctx, refresh, { relevant = () => true, pollSeconds = 4, debounceMs = 250 } = {}) {
  let timer = null;
  let poller = null;
  let running = false;
  let again = false;

  const run = async () => {
    if (ctx.signal.aborted) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await refresh();
    } catch (err) {
      if (!ctx.signal.aborted) console.warn("refresh failed", err);
    } finally {
      running = false;
      if (again) {
        again = false;
        schedule();
      }
    }
  };
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(run, debounceMs);
  };
  const unsubscribe = ctx.events.subscribe((ev) => {
    if (relevant(ev)) schedule();
  });
  let wasLive = ctx.events.live;
  const unwatch = ctx.events.onState((state) => {
    const live = state === "live";
    if (live && poller) {
      clearInterval(poller);
      poller = null;
    }
    if (!live && !poller) poller = setInterval(run, pollSeconds * 1000);
    if (live && !wasLive) schedule(); // catch up on what happened while the stream was down
    wasLive = live;
  });
  return () => {
    clearTimeout(timer);
    if (poller) clearInterval(poller);
    unsubscribe();
    unwatch();
  };
}

/** A page's header: title, a line under it, and actions on the right. */
export function pageHead(title, sub, ...actions) {
  return h(
    "div",
    { class: "page-head" },
    h("div", {}, h("h1", {}, title), sub ? h("div", { class: "sub" }, sub) : null),
    h("div", { class: "actions" }, actions),
  );
}

/** A segmented control: options [[value, label]], calls onChange(value). */
export function segmented(options, value, onChange) {
  const wrap = h("div", { class: "segmented", role: "group" });
  for (const [v, label] of options) {
    const b = h("button", { type: "button", class: v === value ? "on" : null, "data-value": v }, label);
    b.addEventListener("click", () => {
      for (const other of wrap.children) other.classList.toggle("on", other === b);
      onChange(v);
    });
    wrap.append(b);
  }
  return wrap;
}
