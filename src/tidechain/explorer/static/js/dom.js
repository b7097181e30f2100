// Building the page from data: every text goes in as a text node, never as HTML, so
// nothing a node or a transaction says can become markup or script.

/** An element: h("a", {href: "#/"}, "Home", child, [more, children]). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replace the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A link inside the explorer: `route` is "#/..." (the hash router's address). */
export function link(route, ...text) {
  return h("a", { href: route }, ...text);
}

/** The hash route `#/path?k=v...` with the parameters that are set. */
export function route(path, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") query.set(k, String(v));
  }
  const text = query.toString();
  return `#/${path}${text ? "?" + text : ""}`;
}

/** A section with a heading. */
export function section(title, ...children) {
  return h("section", { class: "panel" }, h("h2", {}, title), ...children);
}

/** A definition list from [term, value] pairs (values may be nodes). */
export function dl(pairs) {
  return h("dl", { class: "fields" },
    pairs.filter((p) => p && p[1] !== undefined).map(([term, value]) => [
      h("dt", {}, term), h("dd", {}, value === null ? "—" : value),
    ]));
}

/** A table: columns is [[heading, (row) => cell]]. */
export function table(caption, columns, rows, empty = "Nothing to show.") {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, columns.map(([heading]) => h("th", { scope: "col" }, heading)))),
      h("tbody", {}, rows.map((row) => h("tr", {}, columns.map(([, cell]) => {
        const value = cell(row);
        return h("td", {}, value === null || value === undefined ? "—" : value);
      }))))));
}

/** A message box: kind is "info", "warn" or "error". */
export function notice(kind, ...children) {
  const attrs = { class: `notice ${kind}`, role: kind.startsWith("error") ? "alert" : "status" };
  const first = children[0];
  if (first && typeof first === "object" && !(first instanceof Node) && !Array.isArray(first)) {
    Object.assign(attrs, children.shift()); // optional attributes, e.g. {id}
  }
  return h("div", attrs, ...children);
}

/** A <pre> of text. */
export function pre(text) {
  return h("pre", { class: "text" }, text);
}

/** A labelled form field. */
export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 10)}`;
  input.id = id;
  return h("div", { class: "field" },
    h("label", { for: id }, label), input, hint ? h("span", { class: "hint" }, hint) : null);
}
