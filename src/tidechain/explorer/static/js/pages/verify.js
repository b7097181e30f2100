// Verify a receipt in the browser, trusting no node: the receipt verifier's own module
// (static/verify/verify.js, `verifyReceipt(receiptText, trustText, documentBytes?)`)
// checks a .tlog-proof against a trust file, and the document if given. Nothing is
// sent anywhere. The same verifier is a standalone page (verify/verify.html) that can
// be saved and opened offline.

import { getText } from "../api.js";
import { dl, field, h, notice, section } from "../dom.js";
import { value } from "../format.js";
import { title } from "../ui.js";

const MAX_RECEIPT_BYTES = 1024 * 1024; // a receipt or proof set is a few KiB
const MAX_TRUST_BYTES = 256 * 1024;
const MAX_DOCUMENT_BYTES = 1024 * 1024 * 1024;

let verifier = null;
function loadVerifier() {
  if (!verifier) verifier = import("../../verify/verify.js");
  return verifier;
}

async function readFile(input, limit, asText) {
  const file = input.files && input.files[0];
  if (!file) return null;
  if (file.size > limit) throw new Error(`${file.name} is larger than ${limit} bytes`);
  return asText ? file.text() : new Uint8Array(await file.arrayBuffer());
}

function provenView(p) {
  return dl([
    ["Document digest (SHA-256)", h("code", { class: "hash", id: "proven-digest" }, p.digest)],
    ["Deposited by", h("code", { class: "hash" }, p.depositor)],
    ["Call", p.call],
    ["Metadata", value(p.meta)],
    ["Amends", p.amends === null ? undefined : String(p.amends)],
    ["Block height", String(p.height)],
    ["Block time", p.time],
    ["Log index", `${p.log_index} of log ${p.origin} (checkpoint size ${p.checkpoint_size})`],
    ["Transaction", h("code", { class: "hash" }, p.tx_id)],
    ["Signed by", `${(p.signers || []).join(", ")} (quorum ${p.quorum})`],
    ["Co-signed", p.cosigned ? "yes: this receipt proves the deposit; its proof set (tide evidence proof) proves who co-signed" : undefined],
  ]);
}

export function render() {
  const receipt = h("input", { type: "file", id: "verify-receipt", accept: ".tlog-proof,.tlog-proofs,text/plain" });
  const trust = h("input", { type: "file", id: "verify-trust", accept: ".txt,text/plain" });
  const documentInput = h("input", { type: "file", id: "verify-document" });
  const useNode = h("input", { type: "checkbox", id: "verify-node-trust" });
  const out = h("div", { id: "verify-result", "aria-live": "polite" });

  async function onVerify(event) {
    event.preventDefault();
    out.replaceChildren(h("p", {}, "Verifying..."));
    try {
      const receiptText = await readFile(receipt, MAX_RECEIPT_BYTES, true);
      if (!receiptText) throw new Error("choose a receipt file (.tlog-proof)");
      let trustText = await readFile(trust, MAX_TRUST_BYTES, true);
      if (!trustText && useNode.checked) trustText = await getText("/v1/trust");
      if (!trustText) throw new Error("choose the trust file (trust.txt) you were given");
      const documentBytes = await readFile(documentInput, MAX_DOCUMENT_BYTES, false);
      const { verifyReceipt } = await loadVerifier();
      const result = await verifyReceipt(receiptText, trustText, documentBytes);
      if (!result.ok) {
        out.replaceChildren(notice("error", h("strong", {}, "REJECTED: "), result.reason,
          h("span", { class: "reason" }, ` (${result.code})`)));
        return;
      }
      out.replaceChildren(notice("info", h("strong", {}, "VERIFIED. "),
        documentBytes ? "This document, unchanged, was deposited at the time below."
          : "The receipt proves this deposit in the log (give the document to check it too)."),
      provenView(result.proven));
    } catch (err) {
      out.replaceChildren(notice("error", h("strong", {}, "REJECTED: "), err && err.message ? err.message : String(err)));
    }
  }

  return [
    title("Verify a receipt", "Checks a receipt (.tlog-proof) against a trust file, and a document "
      + "against the receipt, here in the browser. Nothing is uploaded; no node is trusted."),
    section("Check a receipt",
      h("form", { class: "verify", onsubmit: onVerify },
        field("Receipt (.tlog-proof)", receipt),
        field("Trust file (trust.txt)", trust, "from the network's operators, not from a node you are checking"),
        h("div", { class: "field check" }, useNode,
          h("label", { for: "verify-node-trust" }, "No trust file at hand: use this node's (then the node is trusted)")),
        field("Document (optional)", documentInput, "hashed here, never sent"),
        h("button", { type: "submit" }, "Verify")),
      out),
    section("The standalone verifier",
      h("p", {}, "The same verifier as a page of its own: ",
        h("a", { href: "verify/verify.html" }, "open the verifier page"), "."),
      h("p", {}, "Or keep it: ", h("a", { href: "download/verify.html", download: "verify.html", id: "standalone" },
        "download verify.html"), ", one self-contained file that opens from disk with no "
        + "server and no network (the same bytes as ", h("code", {}, "tide explorer verify-html"),
      "). Its SHA-256 is published in the project's docs (docs/verify-html.md), so a court or "
        + "an auditor can check they hold the genuine file.")),
  ];
}
