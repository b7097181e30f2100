// Supply-chain finance: receivable certificates, looked through (穿透) from any one of
// them: its lineage up to the issue with the trade background, and the tree of every
// certificate under that issue (/v1/apps/scf/lineage, /tree, /certificate); the
// certificates unpaid past maturity (/overdue). The regulator reads all; a party its own.

import { apiPath, getJSON } from "../api.js";
import { dl, field, h, link, route, section, table } from "../dom.js";
import { cny, time, toMember, toTx, value } from "../format.js";
import { loading, pager, title } from "../ui.js";

const PAGE_SIZE = 50;

function certificatesTable(caption, items) {
  return table(caption, [
    ["Id", (c) => link(route("scf", { id: c.id }), String(c.id))],
    ["Tier", (c) => String(c.tier)],
    ["Parent", (c) => (c.parent === null || c.parent === undefined ? "the issue" : link(route("scf", { id: c.parent }), String(c.parent)))],
    ["Holder", (c) => toMember(c.holder)],
    ["Sent to (awaiting acceptance)", (c) => (c.pending ? toMember(c.pending) : "—")],
    ["Face value", (c) => cny(c.amount)],
    ["Status", (c) => c.status + (c.overdue ? ", overdue" : "")],
    ["Maturity", (c) => time(c.maturity)],
    ["Red-letter flag", (c) => (c.flagged ? "flagged" : "no")],
    ["Financed by", (c) => (c.funders && c.funders.length ? h("span", {}, c.funders.map((f) => toMember(f))) : "—")],
  ], items, "No certificates you may read.");
}

function certificateView(c) {
  return dl([
    ["Tier", String(c.tier)],
    ["Core enterprise", toMember(c.core)],
    ["Holder", toMember(c.holder)],
    ["Sent to, awaiting acceptance", c.pending ? toMember(c.pending) : "—"],
    ["Face value", cny(c.amount)],
    ["Status", h("strong", {}, c.status)],
    ["Overdue", c.overdue ? "yes" : "no"],
    ["Red-letter flag", c.flagged ? "flagged: an invoice behind it was reversed" : "no"],
    ["Maturity", time(c.maturity)],
    ["Issued", time(c.issued)],
    ["Transaction", toTx(c.tx)],
    ["Split into", c.children && c.children.length
      ? h("span", {}, c.children.map((i) => [link(route("scf", { id: i }), `#${i}`), " "])) : "—"],
    ["Financing asked of", c.finance_requested_from ? toMember(c.finance_requested_from) : "—"],
    ["Financings", value(c.financings)],
    ["Settlement", value(c.settled)],
  ]);
}

function backgroundView(b) {
  if (!b) return null;
  return dl([
    ["Supply contract (SHA-256)", h("code", { class: "hash" }, b.contract)],
    ["Invoices backing it", b.invoices && b.invoices.length
      ? h("ul", { class: "plain" }, b.invoices.map(([number, amount]) => h("li", {},
        link(route(`invoice/${number}`), number), `: ${cny(amount)}`)))
      : "none"],
    ["Reversed (red-letter) invoices", b.flagged && b.flagged.length ? b.flagged.join(", ") : "none"],
  ]);
}

export function render(scope, params) {
  const id = /^(0|[1-9][0-9]{0,18})$/.test(params.id || "") ? params.id : undefined;
  const idInput = h("input", { name: "id", value: id || "", inputmode: "numeric", pattern: "[0-9]+", size: 10 });
  const parts = [
    title("Supply-chain finance", "Receivable certificates issued by core enterprises, split down "
      + "the tiers, financed and settled. Look through any certificate to its issue and trade background."),
    section("Look through a certificate",
      h("form", { class: "filters", onsubmit: (e) => {
        e.preventDefault();
        window.location.hash = route("scf", { id: idInput.value.trim() });
      } }, field("Certificate id", idInput), h("button", { type: "submit" }, "Look through"))),
  ];
  if (id !== undefined) {
    parts.push(loading(`Certificate ${id}`, async () => certificateView(
      await getJSON(apiPath("/v1/apps/scf/certificate", { id }))), { id: "scf-certificate" }));
    parts.push(loading("Lineage: up to the issue, with the trade background", async () => {
      const lineage = await getJSON(apiPath("/v1/apps/scf/lineage", { id }));
      return [certificatesTable("From this certificate up to the issue", lineage.chain || []),
        h("h3", {}, "Trade background"), backgroundView(lineage.background)];
    }, { id: "scf-lineage" }));
    parts.push(loading("Every certificate under the same issue", async () => {
      // The tree is read from its issue (the root), whichever certificate was asked for.
      const { root } = await getJSON(apiPath("/v1/apps/scf/certificate", { id }));
      const page = await getJSON(apiPath("/v1/apps/scf/tree", { id: root, limit: PAGE_SIZE, cursor: params.cursor }));
      return [certificatesTable("Certificate tree", page.items), pager("scf", { id, cursor: params.cursor }, page.next)];
    }, { id: "scf-tree" }));
  } else {
    parts.push(loading("Certificates issued", async () => {
      const page = await getJSON(apiPath("/v1/txs", { contract: "scf", method: "issue", limit: PAGE_SIZE }));
      return table("Issues, newest first", [
        ["Certificate", (t) => certificateOf(t)],
        ["Core enterprise", (t) => toMember(t.sender)],
        ["To", (t) => toMember(t.args.to)],
        ["Amount", (t) => cny(t.args.amount)],
        ["Maturity", (t) => time(t.args.maturity)],
        ["Transaction", (t) => toTx(t.tx_id, time(t.time_ms))],
      ], page.items, "No issues you may read.");
    }));
  }
  parts.push(loading("Overdue", async () => {
    const page = await getJSON(apiPath("/v1/apps/scf/overdue", { limit: PAGE_SIZE }));
    return certificatesTable("Unpaid past maturity", page.items);
  }));
  return parts;
}

function certificateOf(t) {
  const events = (t.result && t.result.events) || [];
  for (const e of events) {
    if (e.data && e.data.id !== undefined) return link(route("scf", { id: e.data.id }), String(e.data.id));
  }
  return t.result && !t.result.ok ? `refused: ${t.result.error}` : "—";
}
