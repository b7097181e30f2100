// Home: the chain's public status (/v1/status) and the latest blocks and transactions,
// updated as blocks commit.

import { apiPath, getJSON } from "../api.js";
import { dl, h, link, notice, replace, route, section, table } from "../dom.js";
import { hex, short, size, time, toBlock, toMember, toTx } from "../format.js";
import { coalesce, errorView, title } from "../ui.js";

const LATEST = 10; // blocks and transactions shown on the home page

export function render(scope) {
  const statusBody = h("div", { id: "status", "aria-live": "polite" }, h("p", { class: "loading" }, "Loading..."));
  const blocksBody = h("div", { id: "latest-blocks" }, h("p", { class: "loading" }, "Loading..."));
  const txsBody = h("div", { id: "latest-txs" }, h("p", { class: "loading" }, "Loading..."));
  let blocks = [];
  let txsRefused = false;

  async function refreshStatus() {
    try {
      const status = await getJSON("/v1/status");
      replace(statusBody, statusView(status));
    } catch (err) {
      replace(statusBody, errorView(err));
    }
  }

  async function refreshBlocks() {
    try {
      const page = await getJSON(apiPath("/v1/blocks", { limit: LATEST }));
      blocks = page.items;
      replace(blocksBody, blocksTable(blocks));
    } catch (err) {
      blocks = null;
      replace(blocksBody, errorView(err));
    }
  }

  async function refreshTxs() {
    try {
      const page = await getJSON(apiPath("/v1/txs", { limit: LATEST }));
      txsRefused = false;
      replace(txsBody, txsTable(page.items));
    } catch (err) {
      txsRefused = true;
      replace(txsBody, errorView(err));
    }
  }

  const laterStatus = coalesce(refreshStatus);
  const laterBlocks = coalesce(refreshBlocks);
  const laterTxs = coalesce(refreshTxs);
  scope.onCommit((commit) => {
    if (commit.status) replace(statusBody, statusView(commit.status));
    else laterStatus();
    if (blocks && commit.tx_count !== null && commit.tx_count !== undefined) {
      // The event is the block's summary: shown as it came.
      if (!blocks.length || blocks[0].height < commit.height) {
        blocks = [{ height: commit.height, hash: commit.hash, time_ms: commit.time_ms,
          proposer: commit.proposer, tx_count: commit.tx_count, log_size: commit.log_size },
        ...blocks].slice(0, LATEST);
        replace(blocksBody, blocksTable(blocks));
      }
    } else if (blocks) {
      laterBlocks();
    }
    if (commit.tx_count !== 0 && !txsRefused) laterTxs();
  });

  refreshStatus();
  refreshBlocks();
  refreshTxs();

  return [
    title("Chain status", "What this node reports now: public, readable by anyone."),
    section("Status", statusBody),
    section("Latest blocks", blocksBody, h("p", {}, link(route("blocks"), "All blocks"))),
    section("Latest transactions", txsBody, h("p", {}, link(route("txs"), "All transactions"))),
  ];
}

function statusView(s) {
  const certs = s.certificates;
  const warnings = certs.expired + certs.expiring;
  return [
    dl([
      ["Network", s.network],
      ["Chain id", hex(s.chain_id)],
      ["Log origin", s.origin],
      ["Node", s.node],
      ["API version", s.api_version || "—"],
      ["Height", h("span", { id: "height" }, String(s.height))],
      ["Block hash", hex(s.block_hash)],
      ["Block time", time(s.block_time_ms)],
      ["Log size", h("span", { id: "log-size" }, String(s.log_size))],
      ["Log root", hex(s.log_root)],
      ["State root", hex(s.state_root)],
      ["Validators", h("span", {}, s.validators.join(", "), " ", link(route("validators"), "(details)"))],
      ["Quorum", `${s.quorum} of ${s.validators.length}`],
      ["Consensus", `height ${s.consensus.height}, round ${s.consensus.round}`],
      ["Sync", syncText(s.sync)],
      ["Mempool", `${s.mempool.transactions} transactions, ${size(s.mempool.bytes)} `
        + `(capacity ${s.mempool.capacity})`],
    ]),
    h("h3", {}, "Certificates"),
    warnings
      ? notice("warn", `${certs.expired} expired and ${certs.expiring} ending within `
        + `${certs.warn_days} days, of ${certs.checked} checked${certs.truncated ? " (not all read)" : ""}.`)
      : h("p", {}, `None of the ${certs.checked} certificates checked ends within ${certs.warn_days} days.`),
    certs.soonest.length ? table("Certificates ending soonest", [
      ["Kind", (c) => c.kind],
      ["Organisation", (c) => c.org],
      ["Name", (c) => c.name],
      ["Id", (c) => (c.kind === "member" ? toMember(c.id) : short(c.id))],
      ["Ends", (c) => time(c.not_after_ms)],
      ["Days left", (c) => String(c.days_left)],
    ], certs.soonest) : null,
  ];
}

function syncText(sync) {
  const parts = [sync.catching_up ? "catching up" : "in step",
    `peers' height ${sync.peer_height}`, `${sync.behind_blocks} blocks behind`];
  if (sync.state_sync) {
    const st = sync.state_sync;
    parts.push(`state sync: ${st.phase}, ${st.records}/${st.records_total ?? "?"} records, `
      + `${st.entries}/${st.entries_total ?? "?"} entries`);
  }
  return parts.join("; ");
}

export function blocksTable(items) {
  return table("Blocks, highest first", [
    ["Height", (b) => toBlock(b.height)],
    ["Time", (b) => time(b.time_ms)],
    ["Transactions", (b) => String(b.tx_count)],
    ["Log size", (b) => String(b.log_size)],
    ["Proposer", (b) => b.proposer],
    ["Hash", (b) => short(b.hash)],
  ], items, "No blocks yet.");
}

export function txsTable(items) {
  return table("Transactions, newest first", [
    ["Log index", (t) => (t.log_index ?? "—")],
    ["Transaction", (t) => toTx(t.tx_id)],
    ["Height", (t) => (t.height === null || t.height === undefined ? "pending" : toBlock(t.height))],
    ["Time", (t) => time(t.time_ms)],
    ["Call", (t) => `${t.contract}.${t.method}`],
    ["Sender", (t) => toMember(t.sender)],
    ["Result", (t) => (t.result ? (t.result.ok ? "ok" : `refused: ${t.result.error}`) : "—")],
  ], items, "No transactions you may read.");
}
