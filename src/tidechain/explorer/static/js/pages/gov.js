// Governance: the settings, the proposals with their votes, tallies and effects
// (/v1/apps/gov/settings, /proposals, /proposal; admins and the regulator read them).

import { apiPath, getJSON } from "../api.js";
import { dl, h, link, route, section, table } from "../dom.js";
import { time, toBlock, toMember, value } from "../format.js";
import { loading, pager, title } from "../ui.js";

const PAGE_SIZE = 25;

function tally(p) {
  const t = p.tally || {};
  return `${t.approvals ?? 0} for, ${t.rejections ?? 0} against, of ${t.orgs ?? "?"} organisations`;
}

function proposalsTable(items) {
  return table("Proposals, newest first", [
    ["Id", (p) => link(route(`gov/${p.id}`), String(p.id))],
    ["Action", (p) => p.action],
    ["Proposed by", (p) => h("span", {}, p.org, " ", toMember(p.proposer))],
    ["Time", (p) => time(p.time)],
    ["Status", (p) => p.status],
    ["Tally", (p) => tally(p)],
    ["Deadline", (p) => time(p.deadline)],
  ], items, "No proposals.");
}

export function render(scope, params, id) {
  if (id !== undefined) return proposal(id);
  return [
    title("Governance", "Decisions of the member organisations: one vote per organisation; "
      + "passed decisions apply at their height."),
    loading("Settings", async () => {
      const s = await getJSON("/v1/apps/gov/settings");
      return dl([
        ["Passing share", Array.isArray(s.threshold) ? `${s.threshold[0]}/${s.threshold[1]} of the organisations` : value(s.threshold)],
        ["Voting organisations", s.orgs.join(", ")],
        ["Voting period", `${Math.round(s.voting_period_ms / 3_600_000)} hours`],
        ["As of height", toBlock(s.height)],
      ]);
    }),
    loading("Proposals", async () => {
      const page = await getJSON(apiPath("/v1/apps/gov/proposals", { limit: PAGE_SIZE, cursor: params.cursor }));
      return [proposalsTable(page.items), pager("gov", { cursor: params.cursor }, page.next)];
    }, { id: "proposals" }),
  ];
}

function proposal(id) {
  if (!/^(0|[1-9][0-9]{0,18})$/.test(id)) return title("Not a proposal id");
  return [
    title(`Proposal ${id}`),
    h("p", {}, link(route("gov"), "All proposals")),
    loading(null, async () => {
      const p = await getJSON(apiPath("/v1/apps/gov/proposal", { id }));
      return [
        dl([
          ["Action", h("strong", {}, p.action)],
          ["Arguments", value(p.args)],
          ["Status", h("strong", {}, p.status)],
          ["Tally", tally(p)],
          ["Proposed by", h("span", {}, `${p.org}: `, toMember(p.proposer))],
          ["Proposed at", h("span", {}, toBlock(p.height), ", ", time(p.time))],
          ["Voting closes", time(p.deadline)],
          ["Effective height", p.effective_height ? String(p.effective_height) : "the block after it passes"],
          ["Decided at height", p.decided_height === null ? "—" : toBlock(p.decided_height)],
          ["Applied at height", p.apply_height === null ? "—" : toBlock(p.apply_height)],
          ["Reason", p.reason || undefined],
        ]),
        section("Votes", table("Votes", Object.keys(p.votes[0] || {}).map((k) => [k, (v) => value(v[k], k)]),
          p.votes, "No votes yet.")),
        section("Effect", p.effect ? value(p.effect) : h("p", {}, "None recorded (not applied).")),
      ];
    }),
  ];
}
