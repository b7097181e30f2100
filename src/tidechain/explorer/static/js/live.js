// Live updates: the node's server-sent events (`GET /v1/events`, public: one `commit`
// event per block, id = height, data {height, hash, time_ms, tx_count, log_size,
// log_root, proposer}) through the browser's EventSource, which resumes by itself
// with Last-Event-ID. While the stream is down (an older node without it, the node's
// bound on open streams, a proxy that buffers) the page polls the public /v1/status
// instead, and opens the stream again later.

import { getJSON } from "./api.js";

export const POLL_MS = 3000; // how often /v1/status is read without the stream
export const RETRY_STREAM_MS = 30_000; // how long after a closed stream it is opened again
const listeners = new Set();
let lastHeight = null;
let mode = "starting";
let source = null;
let polling = null;
let retry = null;
let started = false;

/** Call fn(commit) for each new block, with the event's data; returns the unsubscriber. */
export function onCommit(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** How updates arrive now: "stream", "polling" or "starting". */
export const liveMode = () => mode;

let modeListener = () => {};
/** Call fn(mode) whenever the way updates arrive changes. */
export function onMode(fn) {
  modeListener = fn;
}

function setMode(next) {
  if (next === mode) return;
  mode = next;
  modeListener(next);
}

function emit(commit) {
  if (typeof commit.height !== "number") return;
  if (lastHeight !== null && commit.height <= lastHeight) return;
  lastHeight = commit.height;
  for (const fn of listeners) {
    try {
      fn(commit);
    } catch (err) {
      console.error("live update failed", err);
    }
  }
}

/** Start following the chain (once, at load): from the head the status shows, so no
 * block between that read and the stream's start is missed. */
export async function startLive() {
  if (source || retry || started) return;
  started = true;
  try {
    const status = await getJSON("/v1/status");
    emit(statusCommit(status));
  } catch {
    // the stream alone will do
  }
  if (typeof EventSource === "undefined") {
    startPolling();
    return;
  }
  openStream();
}

function statusCommit(status) {
  return {
    height: status.height, hash: status.block_hash, time_ms: status.block_time_ms,
    log_size: status.log_size, log_root: status.log_root, tx_count: null, proposer: null,
    status,
  };
}

function openStream() {
  retry = null;
  // The blocks after the last one seen (the node replays them first), then live ones;
  // on reconnecting, the browser's Last-Event-ID takes over.
  source = new EventSource(lastHeight === null ? "/v1/events" : `/v1/events?from=${lastHeight + 1}`);
  source.addEventListener("open", () => {
    stopPolling();
    setMode("stream");
  });
  source.addEventListener("commit", (event) => {
    try {
      emit(JSON.parse(event.data));
    } catch {
      // a malformed event is skipped: the next one carries the new head
    }
  });
  source.addEventListener("error", () => {
    // CONNECTING: the browser retries by itself; poll meanwhile. CLOSED (an answer
    // that is not a stream): poll, and open the stream again later.
    startPolling();
    if (source.readyState === EventSource.CLOSED) {
      source = null;
      retry = setTimeout(openStream, RETRY_STREAM_MS);
    }
  });
}

function startPolling() {
  setMode("polling");
  if (polling) return;
  const tick = async () => {
    try {
      emit(statusCommit(await getJSON("/v1/status")));
    } catch {
      // the node is away: keep trying
    }
  };
  tick();
  polling = setInterval(tick, POLL_MS);
}

function stopPolling() {
  if (polling) clearInterval(polling);
  polling = null;
}
