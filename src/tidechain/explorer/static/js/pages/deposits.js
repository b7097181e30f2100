// Evidence deposits (/v1/apps/evidence/deposits, /deposit): the list, one deposit with
// its co-signers, and "drop a document": the document is hashed here (SHA-256) and
// only its digest is looked up. The document never leaves the browser.

import { apiPath, getJSON, getText } from "../api.js";
import { toHex } from "../bytes.js";
import { sha256 } from "../crypto.js";
import { dl, field, h, link, route, section, table } from "../dom.js";
import { hex, size, time, toBlock, toDeposit, toMember, toTx, value } from "../format.js";
import { download, errorView, loading, pager, title } from "../ui.js";

const PAGE_SIZE = 25;
export const MAX_DOCUMENT_BYTES = 1024 * 1024 * 1024; // hashed in memory: 1 GiB at most
const DIGEST = /^[0-9a-f]{64}$/;
let hashed = null; // {name, digest} of the last document hashed here, shown beside its results

function depositsTable(items) {
  return table("Deposits, newest first", [
    ["Index", (d) => toDeposit(d.index)],
    ["Digest (SHA-256)", (d) => h("code", { class: "digest" }, d.digest)],
    ["Depositor", (d) => toMember(d.depositor)],
    ["Block", (d) => toBlock(d.height)],
    ["Time", (d) => time(d.time)],
    ["Status", (d) => d.status || "effective"],
    ["Co-signers", (d) => (d.cosign ? `${d.cosign.signed.length} of ${d.cosign.threshold} needed (${d.cosign.cosigners.length} named)` : "—")],
    ["Public", (d) => (d.public ? "yes" : "no")],
    ["Amends", (d) => (d.amends === null || d.amends === undefined ? "—" : toDeposit(d.amends))],
  ], items, "No deposits you may read.");
}

/** The drop zone: hash a document locally, then look its digest up. */
function dropZone(digest, onDigest) {
  const status = h("p", { class: "drop-status", "aria-live": "polite" },
    "The document is hashed in this browser; only its SHA-256 digest is looked up.");
  const showHashed = () => status.replaceChildren(`${hashed.name}: SHA-256 `,
    h("code", { id: "document-digest" }, hashed.digest));
  if (hashed && hashed.digest === digest) showHashed();
  const input = h("input", { type: "file", id: "document", class: "visually-hidden" });
  async function hashFile(file) {
    if (!file) return;
    if (file.size > MAX_DOCUMENT_BYTES) {
      status.textContent = `${file.name} is larger than ${size(MAX_DOCUMENT_BYTES)}: hash it with \`sha256sum\` and enter the digest.`;
      return;
    }
    status.textContent = `Hashing ${file.name} (${size(file.size)}) here...`;
    hashed = { name: file.name, digest: toHex(await sha256(new Uint8Array(await file.arrayBuffer()))) };
    showHashed();
    onDigest(hashed.digest);
  }
  input.addEventListener("change", () => {
    hashFile(input.files[0]);
    input.value = "";
  });
  const zone = h("div", { class: "drop", id: "drop-zone" },
    h("p", {}, h("strong", {}, "Drop a document here"), " or ",
      h("label", { for: "document", class: "button" }, "choose a document"), input),
    status);
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    hashFile(e.dataTransfer.files[0]);
  });
  return zone;
}

export function list(scope, params) {
  const digestInput = h("input", {
    name: "digest", value: params.digest || "", pattern: "[0-9a-f]{64}", maxlength: 64, size: 66,
    autocomplete: "off",
  });
  const form = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    window.location.hash = route("deposits", { digest: digestInput.value.trim().toLowerCase() });
  } }, field("Digest", digestInput, "SHA-256, 64 hex digits"), h("button", { type: "submit" }, "Look up"));
  const digest = params.digest && DIGEST.test(params.digest) ? params.digest : undefined;
  if (!digest) hashed = null;
  return [
    title("Evidence deposits", "Documents anchored by their SHA-256 digest. Public deposits are "
      + "readable by anyone; others by their depositor, their co-signers and the regulator."),
    section("Find a document's deposits",
      dropZone(digest, (d) => {
        window.location.hash = route("deposits", { digest: d });
      }), form),
    loading(digest ? "Deposits of this digest" : "All deposits", async () => {
      const page = await getJSON(apiPath("/v1/apps/evidence/deposits", {
        digest, limit: PAGE_SIZE, cursor: params.cursor,
      }));
      return [
        digest && !page.items.length && !page.next
          ? h("p", { id: "no-deposit" }, "No deposit of this digest that you may read.") : null,
        depositsTable(page.items),
        pager("deposits", { digest, cursor: params.cursor }, page.next),
      ];
    }, { id: "deposit-results" }),
  ];
}

function slotText(slot) {
  if (slot.key) return toMember(slot.key);
  return `${slot.org}: ${slot.role}`;
}

export function one(scope, params, indexText) {
  if (!/^(0|[1-9][0-9]{0,18})$/.test(indexText || "")) return title("Not a deposit index");
  return [
    title(`Deposit ${indexText}`),
    loading(null, async () => {
      const d = await getJSON(apiPath("/v1/apps/evidence/deposit", { index: indexText }));
      const status = h("p", { "aria-live": "polite" });
      const receipt = h("button", {
        type: "button",
        onclick: async () => {
          try {
            const text = await getText(`/v1/proof/${d.index}`);
            download(`deposit-${d.index}.tlog-proof`, text);
            status.textContent = `Saved deposit-${d.index}.tlog-proof.`;
          } catch (err) {
            status.replaceChildren(errorView(err));
          }
        },
      }, "Download the deposit's receipt");
      const parts = [
        dl([
          ["Digest (SHA-256)", hex(d.digest)],
          ["Status", h("strong", { id: "deposit-status" }, d.status || "effective")],
          ["Depositor", toMember(d.depositor, h("code", { class: "hash" }, d.depositor))],
          ["Block", toBlock(d.height)],
          ["Time", time(d.time)],
          ["Transaction", toTx(d.tx)],
          ["Public", d.public ? "yes: anyone may look it up" : "no"],
          ["Amends", d.amends === null || d.amends === undefined ? "—" : toDeposit(d.amends)],
          ["Metadata", value(d.meta)],
        ]),
        h("p", {}, receipt, " ", link(route("verify"), "Verify a receipt"), status),
      ];
      if (d.cosign) {
        const c = d.cosign;
        parts.push(section("Co-signers",
          dl([
            ["Threshold", `${c.threshold} of ${c.cosigners.length}`],
            ["Signed", String(c.signed.length)],
            ["Deadline", time(c.deadline)],
            ["Effective", c.effective ? h("span", {}, "since ", toBlock(c.effective.height), ", ", time(c.effective.time), " (", link(route(`entry/${c.effective.index}`), `entry ${c.effective.index}`), ")") : "not yet"],
          ]),
          table("Named co-signers", [
            ["Slot", (s) => String(s.i)],
            ["Who", (s) => slotText(s.slot)],
          ], c.cosigners.map((slot, i) => ({ i, slot }))),
          table("Signatures", [
            ["Slot", (s) => String(s.slot)],
            ["Signed by", (s) => toMember(s.key)],
            ["Its log entry", (s) => link(route(`entry/${s.index}`), String(s.index))],
            ["Block", (s) => toBlock(s.height)],
            ["Time", (s) => time(s.time)],
          ], c.signed, "No co-signer has signed yet.")));
      }
      if (d.amended_by && d.amended_by.length) {
        parts.push(section("Amended by", depositsTable(d.amended_by)));
      }
      return parts;
    }),
  ];
}

