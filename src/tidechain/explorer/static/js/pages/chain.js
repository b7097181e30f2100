// Blocks, transactions and search: /v1/blocks, /v1/block/{h}, /v1/txs, /v1/tx/{id},
// /v1/search, each read with the visitor's credential; receipts from /v1/proof/{i}.

import { apiPath, getJSON, getText } from "../api.js";
import { dl, field, h, link, pre, route, section, table } from "../dom.js";
import { hex, short, time, toBlock, toMember, toTx, value } from "../format.js";
import { parseCheckpoint } from "../consistency.js";
import { download, errorView, loading, pager, title } from "../ui.js";
import { blocksTable, txsTable } from "./home.js";

const PAGE_SIZE = 25;
const TX_ID = /^[0-9a-f]{64}$/;

export function blocks(scope, params) {
  return [
    title("Blocks", "Every block, highest first. Members only."),
    loading(null, async () => {
      const page = await getJSON(apiPath("/v1/blocks", { limit: PAGE_SIZE, cursor: params.cursor }));
      return [blocksTable(page.items), pager("blocks", params, page.next)];
    }),
  ];
}

export function block(scope, params, heightText) {
  if (!/^(0|[1-9][0-9]{0,18})$/.test(heightText || "")) return title("Not a block height");
  const height = Number(heightText);
  return [
    title(`Block ${height}`),
    h("p", {}, height > 0 ? link(route(`block/${height - 1}`), "Previous block") : null, " ",
      link(route(`block/${height + 1}`), "Next block")),
    loading(null, async () => {
      const b = await getJSON(`/v1/block/${height}`);
      let signers = [];
      try {
        signers = parseCheckpoint(b.checkpoint).signers;
      } catch {
        signers = [];
      }
      return [
        dl([
          ["Height", String(b.height)],
          ["Hash", hex(b.hash)],
          ["Previous", b.height > 0 ? link(route(`block/${b.height - 1}`), short(b.prev)) : hex(b.prev)],
          ["Time", time(b.time_ms)],
          ["Proposer", b.proposer],
          ["Transactions", String(b.tx_count)],
          ["Transactions root", hex(b.tx_root)],
          ["Log size after", String(b.log_size)],
          ["Log root", hex(b.log_root)],
          ["State root", hex(b.state_root)],
          ["Validators hash", hex(b.validators_hash)],
        ]),
        section("Transactions", b.txs.length
          ? h("ol", { class: "plain" }, b.txs.map((id) => h("li", {}, toTx(id, h("code", {}, id)))))
          : h("p", {}, "None.")),
        section("Checkpoint",
          h("p", {}, "The C2SP checkpoint of the log after this block, signed by the validators "
            + "listed below; its signatures are checked against a trust file by the ",
          link(route("verify"), "receipt verifier"), "."),
          h("p", {}, "Signers: ", h("span", { id: "signers" }, signers.join(", ") || "none")),
          pre(b.checkpoint)),
      ];
    }),
  ];
}

function contractOptions(select, chosen) {
  getJSON("/v1/contracts").then((c) => {
    for (const contract of c.contracts) {
      select.appendChild(h("option", { value: contract.name, selected: contract.name === chosen }, contract.name));
    }
  }, () => {});
}

export function txs(scope, params) {
  const contract = h("select", { name: "contract" }, h("option", { value: "" }, "any"));
  if (params.contract) contract.appendChild(h("option", { value: params.contract, selected: true }, params.contract));
  contractOptions(contract, params.contract);
  const method = h("input", { name: "method", value: params.method || "", maxlength: 64, autocomplete: "off" });
  const sender = h("input", {
    name: "sender", value: params.sender || "", pattern: "[0-9a-f]{64}", maxlength: 64,
    size: 66, autocomplete: "off",
  });
  const form = h("form", { class: "filters", onsubmit: (e) => {
    e.preventDefault();
    window.location.hash = route("txs", {
      contract: contract.value, method: method.value.trim(), sender: sender.value.trim(),
    });
  } },
  field("Contract", contract),
  field("Method", method),
  field("Sender key", sender, "64 hex digits"),
  h("button", { type: "submit" }, "Filter"));
  const filters = { contract: params.contract, method: params.method, sender: params.sender };
  return [
    title("Transactions", "Newest first. Each one is shown to its sender, its parties, the roles "
      + "that read its application, and the regulator."),
    form,
    loading(null, async () => {
      const page = await getJSON(apiPath("/v1/txs", { ...filters, limit: PAGE_SIZE, cursor: params.cursor }));
      return [
        page.items.length < PAGE_SIZE && page.next
          ? h("p", { class: "hint" }, "A filtered page may hold fewer transactions and still have a next page.")
          : null,
        txsTable(page.items),
        pager("txs", { ...filters, cursor: params.cursor }, page.next),
      ];
    }),
  ];
}

export function tx(scope, params, id) {
  if (!TX_ID.test(id || "")) return title("Not a transaction id");
  return [
    title("Transaction"),
    h("p", {}, h("code", { class: "hash" }, id)),
    loading(null, async () => txView(await getJSON(`/v1/tx/${id}`))),
  ];
}

export function entry(scope, params, indexText) {
  if (!/^(0|[1-9][0-9]{0,18})$/.test(indexText || "")) return title("Not a log index");
  return [
    title(`Log entry ${indexText}`),
    loading(null, async () => txView(await getJSON(`/v1/log/entry/${indexText}`))),
  ];
}

function txView(t) {
  if (t.status === "pending") return h("p", {}, "Pending: not committed yet.");
  const result = t.result || {};
  const status = h("p", { class: "receipt-status", "aria-live": "polite" });
  const receiptButton = h("button", {
    type: "button",
    id: "receipt-download",
    onclick: async () => {
      status.textContent = "Fetching the receipt...";
      try {
        const text = await getText(`/v1/proof/${t.log_index}`);
        download(`tx-${t.log_index}.tlog-proof`, text);
        status.textContent = `Saved tx-${t.log_index}.tlog-proof (${text.length} bytes): `
          + "check it on the verify page or with `tide verify`.";
      } catch (err) {
        status.replaceChildren(errorView(err));
      }
    },
  }, "Download the receipt (.tlog-proof)");
  return [
    dl([
      ["Transaction id", toTx(t.tx_id, h("code", { class: "hash" }, t.tx_id))],
      ["Status", t.status],
      ["Log index", link(route(`entry/${t.log_index}`), String(t.log_index))],
      ["Block", toBlock(t.height)],
      ["Time", time(t.time_ms)],
      ["Sender", toMember(t.sender, h("code", { class: "hash" }, t.sender))],
      ["Call", h("strong", { id: "tx-call" }, `${t.contract}.${t.method}`)],
    ]),
    section("Arguments (decoded)", value(t.args)),
    section("Result",
      dl([
        ["Outcome", result.ok ? "applied" : `refused by the contract: ${result.error}`],
        ["Reason", result.reason || undefined],
      ]),
      h("h3", {}, "Events"),
      result.events && result.events.length
        ? table("Events", [["Type", (e) => e.type], ["Data", (e) => value(e.data)]], result.events)
        : h("p", {}, "None.")),
    section("Log entry",
      h("p", {}, "The entry's canonical CBOR bytes (base64), as the log hashes them; the "
        + "receipt proves them against a quorum-signed checkpoint. ",
      link(route("verify"), "Verify a receipt here"), "."),
      h("pre", { class: "text wrap" }, t.entry || "—"),
      receiptButton, status),
  ];
}

export function search(scope, params) {
  const q = (params.q || "").trim();
  return [
    title("Search", q ? `Results for "${q}"` : "Search by height, hash, transaction id, digest, member key or invoice number."),
    q ? loading(null, async () => {
      const found = await getJSON(apiPath("/v1/search", { q }));
      return table("Matches", [
        ["Kind", (f) => f.kind],
        ["Id", (f) => h("code", { class: "hash" }, f.id)],
        ["Open", (f) => searchLink(f)],
      ], found.found, "Nothing found that you may read.");
    }) : null,
  ];
}

function searchLink(f) {
  switch (f.kind) {
    case "block": return link(route(`block/${f.id}`), "block");
    case "transaction": return link(route(`tx/${f.id}`), "transaction");
    case "entry": return link(route(`entry/${f.id}`), "log entry");
    case "deposit": return link(route("deposits", { digest: f.id }), "deposits of this digest");
    case "member": return toMember(f.id, "member");
    case "invoice": return link(route(`invoice/${f.id}`), "invoice");
    default: return h("code", {}, f.path);
  }
}
