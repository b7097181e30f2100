// The log watch: at load and after each new block, the node's checkpoint is compared
// with the one this browser remembers (consistency.js); a fork raises the alarm on
// every page until the visitor decides to forget the old checkpoint.

import { ApiError, apiPath, getJSON, getText } from "./api.js";
import { checkLog, forget } from "./consistency.js";
import { h, link, replace } from "./dom.js";

let last = null;
let lastProof = null;
let running = null;
let again = false;
const listeners = new Set();

/** The last comparison: {state, old, current, reason, proof, at} or null. */
export const lastCheck = () => last;

/** The last comparison that verified a consistency proof (state "extends"), or null. */
export const lastVerifiedProof = () => lastProof;

export function onCheck(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Compare now (coalesced: one comparison at a time, one more queued at most). */
export function checkNow() {
  if (running) {
    again = true;
    return running;
  }
  running = (async () => {
    do {
      again = false;
      await checkOnce();
    } while (again);
  })().finally(() => {
    running = null;
  });
  return running;
}

async function checkOnce() {
  let result;
  try {
    const text = await getText("/v1/checkpoint");
    result = await checkLog(text, (old, size) => getJSON(apiPath("/v1/log/consistency", { old, new: size })));
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) result = { state: "empty" };
    else result = { state: "error", reason: err.message || String(err) };
  }
  result.at = Date.now();
  last = result;
  if (result.state === "extends") lastProof = result;
  showAlarm(result);
  for (const fn of listeners) fn(result);
}

/** Forget the remembered checkpoint and start again from the node's current one. */
export function acceptCurrent() {
  forget();
  return checkNow();
}

function showAlarm(result) {
  const banner = document.getElementById("alarm");
  if (!banner) return;
  if (result.state !== "fork") {
    banner.hidden = true;
    banner.replaceChildren();
    return;
  }
  replace(banner,
    h("p", {}, h("strong", {}, "Fork alarm: "),
      "this node's log does not extend the log this browser saw before: ", result.reason, "."),
    h("p", {}, `Seen before: ${result.old.origin}, size ${result.old.size}, root ${result.old.root}. `
      + `Now: ${result.current.origin}, size ${result.current.size}, root ${result.current.root}.`),
    h("p", {}, link("#/log", "Details on the log consistency page"), " ",
      h("button", { type: "button", onclick: () => acceptCurrent() },
        "Forget the old checkpoint and trust this one")));
  banner.hidden = false;
}
