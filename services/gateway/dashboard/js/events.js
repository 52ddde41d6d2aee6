// The organization's live events (`GET /v1/events`), read with fetch and a streaming Server-Sent Events
// parser rather than EventSource, so that the API key travels in the Authorization header (EventSource
// can send only cookies). Reconnects with `Last-Event-ID` after a drop; a 404 means this gateway has no
// stream yet, and pages fall back to polling.

/**
 * Parses a text/event-stream body into {id, event, data} frames, per the WHATWG rules: lines end with
 * CR, LF or CRLF; `:` starts a comment (the heartbeat); a blank line dispatches; data lines join with LF.
 */
export async function* parseEventStream(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let frame = { id: null, event: "message", data: [] };
  const abort = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", abort, { once: true });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let match;
      // A lone CR at the very end may be half of a CRLF: wait for the next chunk.
      while ((match = /\r\n|\n|\r(?=[^\n])/.exec(buffer))) {
        const line = buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
        if (line === "") {
          if (frame.data.length) yield { id: frame.id, event: frame.event, data: frame.data.join("\n") };
          frame = { id: frame.id, event: "message", data: [] };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let val = colon === -1 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "data") frame.data.push(val);
        else if (field === "event") frame.event = val;
        else if (field === "id" && !val.includes("\0")) frame.id = val;
      }
    }
  } finally {
    signal?.removeEventListener("abort", abort);
    reader.releaseLock?.();
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
  });

/** One connection per signed-in tab; pages subscribe to CloudEvents and to the connection state. */
export class LiveEvents {
  constructor(api) {
    this.api = api;
    this.state = "connecting";
    this.lastId = null;
    this.listeners = new Set();
    this.stateListeners = new Set();
    this.controller = new AbortController();
  }

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  onState(fn) {
    this.stateListeners.add(fn);
    fn(this.state);
    return () => this.stateListeners.delete(fn);
  }

  get live() {
    return this.state === "live";
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    for (const fn of this.stateListeners) fn(state);
  }

  stop() {
    this.controller.abort();
  }

  async start() {
    const { signal } = this.controller;
    let backoff = 1000;
    while (!signal.aborted) {
      try {
        const headers = { Accept: "text/event-stream" };
        if (this.lastId) headers["Last-Event-ID"] = this.lastId;
        const response = await this.api.raw("/v1/events", { headers, signal });
        if (response.status === 404) {
          this.setState("unavailable");
          return;
        }
        if (response.status === 401 || response.status === 403) {
          this.setState(response.status === 403 ? "unavailable" : "closed");
          return;
        }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        this.setState("live");
        backoff = 1000;
        for await (const frame of parseEventStream(response.body, signal)) {
          if (frame.id) this.lastId = frame.id;
          let cloudEvent;
          try {
            cloudEvent = JSON.parse(frame.data);
          } catch {
            continue;
          }
          cloudEvent.type ??= frame.event;
          for (const fn of this.listeners) {
            try {
              fn(cloudEvent);
            } catch (err) {
              console.warn("event listener failed", err);
            }
          }
        }
      } catch (err) {
        if (signal.aborted) return;
      }
      if (signal.aborted) return;
      this.setState("reconnecting");
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, 15000);
    }
  }
}

/** The job id a job or cost CloudEvent is about. */
export function eventJobId(cloudEvent) {
  const data = cloudEvent?.data || {};
  return data.job?.job_id || data.job_id || cloudEvent?.subject || null;
}
