// How values are shown. Presentation only: no rule of the chain is decided here.

import { h, link, route } from "./dom.js";
import { memberName } from "./names.js";

/** Milliseconds since the epoch as an ISO 8601 UTC time, in a <time> element. */
export function time(ms) {
  if (ms === null || ms === undefined) return "—";
  const date = new Date(Number(ms));
  if (Number.isNaN(date.getTime())) return String(ms);
  const iso = date.toISOString();
  return h("time", { datetime: iso, title: `${ms} ms since the epoch` },
    iso.replace("T", " ").replace(/\.\d{3}Z$/, " UTC"));
}

/** Whole days from `fromMs` to `toMs`, rounded down (negative once past). */
export function daysBetween(fromMs, toMs) {
  return Math.floor((Number(toMs) - Number(fromMs)) / 86_400_000);
}

/** A hash or key: shown whole (wrapping), in a code element. */
export function hex(value) {
  if (value === null || value === undefined || value === "") return "—";
  return h("code", { class: "hash" }, value);
}

/** A hash or key shortened for a table cell, the whole value in its title. */
export function short(value) {
  if (value === null || value === undefined || value === "") return "—";
  const text = String(value);
  if (text.length <= 20) return h("code", {}, text);
  return h("code", { title: text }, `${text.slice(0, 10)}…${text.slice(-6)}`);
}

export const HEX64 = /^[0-9a-f]{64}$/;

/** Links to the explorer's pages of a block, a transaction, a member. */
export const toBlock = (height) => link(route(`block/${height}`), String(height));
export const toTx = (id, text) => (id ? link(route(`tx/${id}`), text ?? short(id)) : "—");
/** A member key as a link to its page; shown as the member's name when it can be read. */
export function toMember(key, text) {
  if (!key || !HEX64.test(key)) return short(key);
  const a = link(route(`member/${key}`), text ?? short(key));
  if (text === undefined) {
    a.title = key;
    memberName(key).then((m) => {
      if (m) a.replaceChildren(m.name, h("span", { class: "org" }, ` (${m.org})`));
    });
  }
  return a;
}
export const toDeposit = (index) => link(route(`deposit/${index}`), String(index));

/** Fen (1/100 yuan) as CNY with thousands separators. */
export function cny(fen) {
  if (fen === null || fen === undefined) return "—";
  const n = BigInt(fen);
  const sign = n < 0n ? "-" : "";
  const abs = n < 0n ? -n : n;
  const yuan = (abs / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const cents = (abs % 100n).toString().padStart(2, "0");
  return `CNY ${sign}${yuan}.${cents}`;
}

/** Bytes as KiB/MiB for people. */
export function size(bytes) {
  const n = Number(bytes);
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

const SEALED_FIELDS = new Set(["sealed", "ciphertext", "wrapped", "code_wrap", "code"]);
/** Fields never shown: an invoice's sealed content (and the wrapped keys and claim
 * code beside it) is only ever opened by its readers, in their own software. */
export function isSealedField(name) {
  return SEALED_FIELDS.has(name);
}

const TIME_FIELDS = /(^|_)(time|deadline|not_after|not_before|maturity|requested_at|at)(_ms)?$|_ms$/;
const HASH_LINKS = {
  tx: toTx, tx_id: toTx, sender: toMember, depositor: toMember, proposer: toMember,
  holder: toMember, issuer: toMember, member: toMember, signer: toMember, from: toMember,
  to: toMember, core: toMember, funder: toMember, buyer: toMember,
};

/** Any JSON value from the API as nested lists and tables, sealed fields left out. */
export function value(v, name = "") {
  if (v === null || v === undefined) return "—";
  if (name && isSealedField(name)) return h("em", {}, "sealed: not shown");
  if (Array.isArray(v)) {
    if (!v.length) return h("span", { class: "empty" }, "none");
    if (v.every((x) => x && typeof x === "object" && !Array.isArray(x))) return objectTable(v);
    return h("ul", { class: "plain" }, v.map((x) => h("li", {}, value(x, name))));
  }
  if (typeof v === "object") {
    const keys = Object.keys(v);
    if (!keys.length) return h("span", { class: "empty" }, "none");
    return h("dl", { class: "fields nested" },
      keys.map((k) => [h("dt", {}, k), h("dd", {}, value(v[k], k))]));
  }
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v === "number" && name && TIME_FIELDS.test(name) && v > 946_684_800_000) {
    return time(v);
  }
  if (typeof v === "string" && HEX64.test(v) && HASH_LINKS[name]) return HASH_LINKS[name](v);
  if (typeof v === "string" && v.length > 64) return h("code", { class: "hash" }, v);
  if (typeof v === "string" && HEX64.test(v)) return hex(v);
  return String(v);
}

function objectTable(rows) {
  const keys = [];
  for (const row of rows) for (const k of Object.keys(row)) if (!keys.includes(k)) keys.push(k);
  return h("div", { class: "table-wrap" }, h("table", { class: "nested" },
    h("thead", {}, h("tr", {}, keys.map((k) => h("th", { scope: "col" }, k)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, keys.map((k) => h("td", {}, value(row[k], k))))))));
}
