// Log consistency: the checkpoint this browser remembers, the node's current one, and
// the RFC 9162 consistency proof between them, verified here (consistency.js).

import { dl, h, notice, pre, replace, section } from "../dom.js";
import { time } from "../format.js";
import { remembered } from "../consistency.js";
import { acceptCurrent, checkNow, lastCheck, lastVerifiedProof, onCheck } from "../monitor.js";
import { title } from "../ui.js";
import { getText } from "../api.js";

function resultView(r) {
  if (!r) return h("p", { class: "loading" }, "Checking...");
  switch (r.state) {
    case "first":
      return notice("info", { id: "log-first" }, h("strong", {}, "First visit: "),
        `this browser now remembers size ${r.current.size} and will check that every later `
        + "checkpoint extends it.");
    case "same":
      return notice("info", h("strong", {}, "Unchanged: "), `the log still has ${r.current.size} entries, same root.`);
    case "extends":
      return proofView(r);
    case "fork":
      return notice("error", h("strong", { id: "log-fork" }, "Fork alarm: "), r.reason);
    case "empty":
      return notice("info", "The log is empty: no checkpoint yet.");
    default:
      return notice("error", h("strong", {}, "Could not check: "), r.reason || "unknown error");
  }
}

function proofView(r) {
  return notice("info", h("strong", {}, "Consistent: "),
    `the log grew from ${r.old.size} to ${r.current.size} entries, and the consistency proof `
    + `(${r.proof.length} hashes) verified here shows the old log is its prefix.`);
}

function checkpointView(c) {
  if (!c) return h("p", {}, "None.");
  return dl([
    ["Origin", c.origin],
    ["Size", String(c.size)],
    ["Root", h("code", { class: "hash" }, c.root)],
    ["Seen", c.seen_ms ? time(c.seen_ms) : undefined],
  ]);
}

export function render(scope) {
  const result = h("div", { id: "log-result", "aria-live": "polite" });
  const proven = h("div", { id: "log-consistent" });
  const saved = h("div", { id: "log-remembered" });
  const current = h("div", { id: "log-current" });

  function show(r) {
    replace(result, resultView(r));
    const p = lastVerifiedProof();
    replace(proven, p ? [proofView(p), h("p", {}, "Checked at ", time(p.at), ".")]
      : h("p", {}, "None yet in this visit: one is verified for each new checkpoint."));
    replace(saved, checkpointView(remembered()));
  }

  async function showCurrent() {
    try {
      replace(current, pre(await getText("/v1/checkpoint")));
    } catch (err) {
      replace(current, h("p", {}, err.message));
    }
  }

  scope.onLeave(onCheck((r) => {
    show(r);
    showCurrent();
  }));
  show(lastCheck());
  showCurrent();
  checkNow();

  return [
    title("Log consistency", "Every committed transaction is an entry of one append-only Merkle "
      + "log (RFC 9162). This browser remembers the last checkpoint it saw (origin, size, root); for "
      + "each new one it asks the node for a consistency proof and verifies it here. A node that "
      + "rewrote history, or serves another chain, cannot produce one: the page then raises a fork alarm."),
    section("Result", result,
      h("p", {}, h("button", { type: "button", onclick: () => checkNow() }, "Check now"), " ",
        h("button", { type: "button", onclick: () => acceptCurrent() }, "Forget the remembered checkpoint"))),
    section("Last consistency proof verified in this visit", proven),
    section("Remembered by this browser", saved),
    section("The node's current checkpoint", current),
  ];
}
