// The verifier page (verify.html): three drop zones, every check done here, nothing
// uploaded. The verdict is VERIFIED with what the receipt proves, or REJECTED with the
// reason naming the step that failed (verify.js). The page never fetches anything, so
// it works the same served by a node (CSP default-src 'self') or opened from a file.

import { MAX_DOCUMENT_BYTES, MAX_RECEIPT_BYTES, MAX_TRUST_FILE_BYTES } from "./limits.js";
import { cryptoBackends, useWebCrypto, verifyReceipt } from "./verify.js";

/** What each slot holds: {name, bytes} or null; and the bound on its size. */
const slots = {
  receipt: { file: null, limit: MAX_RECEIPT_BYTES },
  trust: { file: null, limit: MAX_TRUST_FILE_BYTES },
  document: { file: null, limit: MAX_DOCUMENT_BYTES },
};
const RECEIPT_SUFFIX = ".tlog-proof";

/** Bumped by every change, so a slow verification of old inputs never shows. */
let generation = 0;

const $ = (id) => document.getElementById(id);

async function load(slot, file) {
  const entry = slots[slot];
  $(`${slot}-name`).textContent = `${file.name} (${file.size} bytes)`;
  $(`drop-${slot}`).classList.add("loaded");
  // A file past the bound is refused without reading it: the verifier would refuse it
  // anyway, and a tab should not load gigabytes to say so.
  entry.file = file.size > entry.limit
    ? { name: file.name, tooLarge: true }
    : { name: file.name, bytes: new Uint8Array(await file.arrayBuffer()) };
  await run();
}

function show(state, word, reason) {
  const verdict = $("verdict");
  verdict.dataset.state = state;
  $("verdict-word").textContent = word;
  $("verdict-reason").textContent = reason;
}

function row(list, term, value, hex = false) {
  const dt = document.createElement("dt");
  dt.textContent = term;
  const dd = document.createElement("dd");
  dd.textContent = value;
  if (hex) dd.className = "hex";
  list.append(dt, dd);
}

function showProven(proven, documentName) {
  const list = $("proven");
  list.replaceChildren();
  row(list, "Document", documentName === null
    ? "not given: the receipt alone proves the digest below was deposited"
    : `${documentName} is the document deposited (its SHA-256 is the digest)`);
  row(list, "Digest (SHA-256)", proven.digest, true);
  const metadata = Object.entries(proven.meta).map(([k, v]) => `${k} = ${v}`);
  row(list, "Metadata", metadata.length ? metadata.join("; ") : "none");
  row(list, "Call", proven.amends === null ? proven.call
    : `${proven.call} (a new version of the deposit at log index ${proven.amends})`);
  row(list, "Depositor", `${proven.depositor} (Ed25519 public key; signature checked)`, true);
  row(list, "Block", `height ${proven.height}, time ${proven.time ?? `${proven.time_ms} ms`}`);
  row(list, "Log entry", `index ${proven.log_index} of ${proven.checkpoint_size}, log ${proven.origin}`);
  row(list, "Signed by", `${proven.signers.join(", ")}: ${proven.signers.length} of the ` +
    `${proven.validators} trusted validators, quorum ${proven.quorum}`);
  row(list, "Transaction id", proven.tx_id, true);
  row(list, "Chain id", proven.chain_id, true);
  if (proven.cosigned) {
    row(list, "Co-signed", "this receipt proves the deposit, not that its co-signers " +
      "signed: verify its proof set with tide verify");
  }
  list.hidden = false;
}

function engineText() {
  const { sha256, ed25519 } = cryptoBackends();
  const name = (b) => (b === "webcrypto" ? "the browser's WebCrypto" : b === "noble" ? "pure JavaScript (noble)" : "none");
  return `SHA-256 by ${name(sha256)}, Ed25519 by ${name(ed25519)}`;
}

async function run() {
  const mine = ++generation;
  const { receipt, trust, document: doc } = {
    receipt: slots.receipt.file, trust: slots.trust.file, document: slots.document.file,
  };
  // Whatever an earlier receipt proved goes first, before anything else can show.
  $("proven").hidden = true;
  $("proven").replaceChildren();
  const inputs = [receipt, trust, doc].map((f) => (f === null ? "" : f.name)).join("|");
  $("verdict").dataset.inputs = "";
  if (receipt === null || trust === null) {
    show("empty", "Waiting for a receipt and a trust file", "");
    return;
  }
  const oversized = [["receipt", receipt], ["trust file", trust], ["document", doc]]
    .find(([, f]) => f !== null && f.tooLarge);
  let result;
  if (oversized !== undefined) {
    result = { ok: false, reason: `the ${oversized[0]} is larger than this page reads` +
      (oversized[0] === "document" ? " (use tide verify for very large documents)" : "") };
  } else {
    show("working", "Checking…", "");
    try {
      result = await verifyReceipt(receipt.bytes, trust.bytes, doc === null ? null : doc.bytes);
    } catch (error) {
      // Not a verdict on the input: a bug here. Never say VERIFIED.
      result = { ok: false, reason: `internal error in the verifier: ${error}` };
    }
  }
  if (mine !== generation) return; // newer inputs arrived meanwhile
  if (result.ok) {
    show("verified", "VERIFIED", "");
    showProven(result.proven, doc === null ? null : doc.name);
  } else {
    show("rejected", "REJECTED", result.reason);
  }
  $("engine").textContent = engineText();
  $("verdict").dataset.inputs = inputs;
}

/** Where a file dropped on the page (not on a zone) goes, by its name. */
function slotFor(file) {
  if (file.name.endsWith(RECEIPT_SUFFIX)) return "receipt";
  if (/trust.*\.txt$/i.test(file.name)) return "trust";
  return "document";
}

function wire() {
  for (const slot of Object.keys(slots)) {
    const zone = $(`drop-${slot}`);
    $(`${slot}-file`).addEventListener("change", (event) => {
      const file = event.target.files[0];
      if (file !== undefined) load(slot, file);
    });
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      event.stopPropagation();
      zone.classList.remove("over");
      const file = event.dataTransfer.files[0];
      if (file !== undefined) load(slot, file);
    });
  }
  // Files dropped elsewhere on the page are sorted by name, so the browser never
  // navigates away to show them.
  document.addEventListener("dragover", (event) => event.preventDefault());
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    for (const file of event.dataTransfer.files) load(slotFor(file), file);
  });
}

// `verify.html?engine=js` checks with the page's own JavaScript (the vendored @noble
// code) instead of the browser's WebCrypto: a second opinion from other code.
if (new URLSearchParams(globalThis.location.search).get("engine") === "js") useWebCrypto(false);
wire();
