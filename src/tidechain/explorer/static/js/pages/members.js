// Organisations, members and validators: /v1/apps/members/{orgs,org,members,member}
// (admins and the regulator read all; a member its own record) and the validator set
// with its key history from the public /v1/status.

import { apiPath, currentMember, getJSON } from "../api.js";
import { dl, h, link, notice, route, section, table } from "../dom.js";
import { daysBetween, hex, short, time, toBlock, toMember, value } from "../format.js";
import { loading, pager, title } from "../ui.js";

const PAGE_SIZE = 50;

function expiry(notAfter) {
  const days = daysBetween(Date.now(), notAfter);
  const text = days < 0 ? `ended ${-days} days ago` : `${days} days left`;
  return h("span", { class: days < 30 ? "soon" : "" }, time(notAfter), ` (${text})`);
}

function membersTable(items) {
  return table("Members", [
    ["Name", (m) => toMember(m.key, m.name)],
    ["Organisation", (m) => m.org],
    ["Roles", (m) => m.roles.join(", ")],
    ["Status", (m) => m.status],
    ["Certificate serial", (m) => String(m.serial)],
    ["Valid from", (m) => time(m.not_before)],
    ["Valid until", (m) => expiry(m.not_after)],
    ["Key", (m) => short(m.key)],
  ], items, "No members you may read.");
}

export function list(scope, params) {
  const org = params.org;
  const parts = [title(org ? `Organisation ${org}` : "Organisations and members",
    "Admins and the regulator read every organisation and member; a member reads its own record.")];
  const me = currentMember();
  if (me) {
    parts.push(h("p", {}, "Your own record: ", toMember(me.key, me.name), "."));
  }
  if (!org) {
    parts.push(loading("Organisations", async () => {
      const page = await getJSON(apiPath("/v1/apps/members/orgs", { limit: PAGE_SIZE, cursor: params.cursor }));
      return [
        table("Organisations", [
          ["Id", (o) => link(route("members", { org: o.org }), o.org)],
          ["Legal name", (o) => o.legal_name],
          ["Unified social credit code", (o) => o.uscc],
          ["Active CAs", (o) => h("ul", { class: "plain" }, o.cas.map((ca) => h("li", {}, short(ca))))],
        ], page.items, "No organisations you may read."),
        pager("members", { cursor: params.cursor }, page.next),
      ];
    }));
    return parts;
  }
  parts.push(h("p", {}, link(route("members"), "All organisations")));
  parts.push(loading("Organisation", async () => {
    const o = await getJSON(apiPath("/v1/apps/members/org", { org }));
    return value(o);
  }));
  parts.push(loading("Members", async () => {
    const page = await getJSON(apiPath("/v1/apps/members/members", { org, limit: PAGE_SIZE, cursor: params.cursor }));
    return [membersTable(page.items), pager("members", { org, cursor: params.cursor }, page.next)];
  }, { id: "members-list" }));
  return parts;
}

export function one(scope, params, key) {
  if (!/^[0-9a-f]{64}$/.test(key || "")) return title("Not a member key");
  return [
    title("Member"),
    loading(null, async () => {
      const m = await getJSON(apiPath("/v1/apps/members/member", { key }));
      return [
        dl([
          ["Name", m.name],
          ["Organisation", link(route("members", { org: m.org }), m.org)],
          ["Roles", m.roles.join(", ")],
          ["Status", h("strong", {}, m.status)],
          ["Key", hex(m.key)],
          ["Certificate authority", hex(m.ca)],
          ["Certificate serial", String(m.serial)],
          ["Valid from", time(m.not_before)],
          ["Valid until", expiry(m.not_after)],
          ["Enrolled at log index", m.enrolled === null || m.enrolled === undefined ? "at genesis" : String(m.enrolled)],
        ]),
        h("p", {}, link(route("txs", { sender: m.key }), "Transactions sent by this member")),
      ];
    }),
  ];
}

export function validators() {
  return [
    title("Validators", "The validator set that signs blocks and checkpoints, and every key that "
      + "has signed with the heights and log sizes it signed for (public: from /v1/status)."),
    loading(null, async () => {
      const s = await getJSON("/v1/status");
      const vs = s.validator_set;
      return [
        dl([
          ["Quorum", `${s.quorum} of ${vs.validators.length} signatures`],
          ["This set since height", toBlock(vs.since_height)],
        ]),
        section("Current validators", table("Validators", [
          ["Name", (v) => v.name],
          ["Organisation", (v) => (v.org ? link(route("members", { org: v.org }), v.org) : "—")],
          ["Key", (v) => hex(v.key)],
          ["Peer address", (v) => v.address || "—"],
          ["TLS certificate", (v) => (v.tls ? short(v.tls) : "—")],
        ], vs.validators)),
        section("Key history", table("Every validator key and what it signed", [
          ["Name", (k) => k.name],
          ["Key", (k) => short(k.key)],
          ["Heights", (k) => span(k.heights)],
          ["Log sizes", (k) => span(k.sizes)],
        ], vs.keys)),
        s.certificates.expiring + s.certificates.expired
          ? notice("warn", "Some certificates end soon: see the home page.") : null,
      ];
    }),
  ];
}

function span([from, to]) {
  return to === null || to === undefined ? `from ${from}` : `${from} to ${to}`;
}
