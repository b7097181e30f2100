// E-invoices: public fields and statistics only. The invoice's content is sealed to its
// readers (ADR 0012) and opened only in their own software: this page never shows it,
// nor the wrapped keys and claim codes beside it (format.js `isSealedField`).

import { apiPath, getJSON } from "../api.js";
import { dl, field, h, link, route, section, table } from "../dom.js";
import { cny, time, toBlock, toMember, toTx, value } from "../format.js";
import { loading, pager, title } from "../ui.js";

const PAGE_SIZE = 25;
const NUMBER = /^[0-9]{20}$/;
const KEY = /^[0-9a-f]{64}$/;
const MONTH = /^[0-9]{4}-(0[1-9]|1[0-2])$/;

function invoicesTable(items) {
  return table("Invoices, newest first", [
    ["Number", (i) => link(route(`invoice/${i.number}`), i.number)],
    ["Kind", (i) => i.kind],
    ["Total", (i) => cny(i.total)],
    ["State", (i) => i.state],
    ["Issuer", (i) => toMember(i.issuer)],
    ["Period", (i) => i.period],
    ["Time", (i) => time(i.time)],
  ], items, "No invoices you may read.");
}

function thisMonth() {
  return new Date().toISOString().slice(0, 7);
}

export function list(scope, params) {
  const issuer = KEY.test(params.issuer || "") ? params.issuer : undefined;
  const issuerInput = h("input", { name: "issuer", value: params.issuer || "", pattern: "[0-9a-f]{64}", size: 66, maxlength: 64, autocomplete: "off" });
  const month = h("input", { name: "month", value: params.month || thisMonth(), pattern: "[0-9]{4}-[0-9]{2}", size: 8, maxlength: 7 });
  const statsIssuer = h("input", { name: "of", value: params.of || "", size: 66, maxlength: 64, autocomplete: "off" });
  const parts = [
    title("E-invoices", "Public fields and statistics. Invoice content is sealed to its readers "
      + "and never shown here."),
    loading("Audit keys", async () => {
      const a = await getJSON("/v1/apps/invoice/auditors");
      return [h("p", {}, `Every new invoice is also sealed to these keys (as of height ${a.height}):`),
        a.auditors.length ? h("ul", { class: "plain" }, a.auditors.map((k) => h("li", {}, toMember(k)))) : h("p", {}, "None set.")];
    }),
    loading("Authorised issuers", async () => {
      const page = await getJSON(apiPath("/v1/txs", { contract: "invoice", method: "authorise_issuer", limit: PAGE_SIZE }));
      return table("Issuer authorisations by the tax authority, newest first", [
        ["Issuer", (t) => link(route("invoices", { issuer: t.args.issuer }), t.args.name || t.args.issuer)],
        ["Tax id", (t) => t.args.tax_id],
        ["Quota", (t) => cny(t.args.quota)],
        ["Authorised", (t) => toTx(t.tx_id, time(t.time_ms))],
        ["Outcome", (t) => (t.result && t.result.ok ? "applied" : "refused")],
      ], page.items, "No authorisations you may read.");
    }),
    section("Invoices of an issuer",
      h("form", { class: "filters", onsubmit: (e) => {
        e.preventDefault();
        window.location.hash = route("invoices", { issuer: issuerInput.value.trim() });
      } }, field("Issuer key", issuerInput, "64 hex digits"), h("button", { type: "submit" }, "Show"))),
  ];
  if (issuer) {
    parts.push(loading(null, async () => {
      const page = await getJSON(apiPath("/v1/apps/invoice/invoices", { issuer, limit: PAGE_SIZE, cursor: params.cursor }));
      return [invoicesTable(page.items), pager("invoices", { issuer, cursor: params.cursor }, page.next)];
    }, { id: "invoices-list" }));
  }
  parts.push(section("Monthly statistics",
    h("form", { class: "filters", onsubmit: (e) => {
      e.preventDefault();
      window.location.hash = route("invoices", { issuer, month: month.value.trim(), of: statsIssuer.value.trim() });
    } }, field("Month", month, "YYYY-MM, UTC"),
    field("Issuer", statsIssuer, "a tax id (18 characters) or an issuer key"),
    h("button", { type: "submit" }, "Show statistics"))));
  if (params.of && MONTH.test(params.month || "")) {
    parts.push(loading(`Statistics for ${params.month}`, async () => {
      const s = await getJSON(apiPath("/v1/apps/invoice/stats", { month: params.month, issuer: params.of }));
      return dl([
        ["Month", s.month],
        ["Tax id", s.tax_id || undefined],
        ["Issuer", s.issuer ? toMember(s.issuer) : undefined],
        ["Issuers counted", String(s.issuer_count)],
        ["Issued", `${cny(s.issued)} in ${s.issued_count} invoice${String(s.issued_count) === "1" ? "" : "s"}`],
        ["Reversed (red-letter)", cny(s.reversed)],
        ["Reimbursed", cny(s.reimbursed)],
        ["As of height", toBlock(s.height)],
      ]);
    }));
  }
  return parts;
}

export function one(scope, params, number) {
  if (!NUMBER.test(number || "")) return title("Not an invoice number");
  return [
    title(`Invoice ${number}`),
    loading(null, async () => {
      const inv = await getJSON(apiPath("/v1/apps/invoice/invoice", { number }));
      return [
        dl([
          ["Kind", inv.kind],
          ["Total", cny(inv.total)],
          ["State", h("strong", {}, inv.state)],
          ["Issuer", toMember(inv.issuer)],
          ["Holder", inv.holder ? toMember(inv.holder) : "—"],
          ["Claimed", inv.claimed ? "yes" : "no"],
          ["Submitted to", inv.submitted_to ? toMember(inv.submitted_to) : "—"],
          ["Locked by", inv.locked_by ? toMember(inv.locked_by) : "—"],
          ["Original (for a red-letter invoice)", inv.original ? link(route(`invoice/${inv.original}`), inv.original) : "—"],
          ["Reason", inv.reason || undefined],
          ["Reversed", cny(inv.reversed)],
          ["Reimbursed", cny(inv.reimbursed)],
          ["Period", inv.period],
          ["Issued", h("span", {}, toBlock(inv.height), ", ", time(inv.time))],
          ["Transaction", toTx(inv.tx)],
          ["Content", h("em", {}, "sealed to its readers: not shown here")],
        ]),
        inv.pending_reversal
          ? section("Pending reversal", value(inv.pending_reversal)) : null,
      ];
    }),
  ];
}
