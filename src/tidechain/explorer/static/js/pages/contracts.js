// Contracts and roles: every application the node runs, its methods with the roles that
// may call them, and its queries with who reads them (/v1/contracts, public); the link
// to the OpenAPI document.

import { getJSON } from "../api.js";
import { h, section, table } from "../dom.js";
import { loading, title } from "../ui.js";

function args(schema) {
  if (!schema || !schema.properties) return "—";
  const required = new Set(schema.required || []);
  const names = Object.keys(schema.properties);
  if (!names.length) return "none";
  return h("ul", { class: "plain" }, names.map((n) => h("li", {}, h("code", {}, n),
    required.has(n) ? "" : " (optional)",
    schema.properties[n].description ? `: ${schema.properties[n].description}` : "")));
}

export function render() {
  return [
    title("Contracts and roles", "The applications this chain runs, who may call each method, "
      + "and who may read each query."),
    h("p", {}, "Machine-readable: ", h("a", { href: "/v1/openapi.json" }, "the OpenAPI 3.1 document"),
      " of this node's API, and ", h("a", { href: "/v1/contracts" }, "/v1/contracts"), "."),
    loading(null, async () => {
      const c = await getJSON("/v1/contracts");
      return c.contracts.map((contract) => section(contract.name,
        h("p", {}, contract.description),
        h("p", {}, `Versions: ${(contract.versions || []).join(", ") || "—"}`),
        table(`${contract.name}: methods`, [
          ["Method", (m) => h("code", {}, m.name)],
          ["Roles that may call it", (m) => m.roles.join(", ")],
          ["What it does", (m) => m.summary],
        ], contract.methods),
        table(`${contract.name}: queries`, [
          ["Query", (q) => h("code", {}, q.path)],
          ["Readers", (q) => q.readers.join(", ")],
          ["Paged", (q) => (q.paged ? "yes" : "no")],
          ["Parameters", (q) => args(q.params)],
          ["What it answers", (q) => q.summary],
        ], contract.queries || [], "No queries.")));
    }),
  ];
}
