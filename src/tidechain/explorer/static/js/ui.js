// Pieces every page uses: refusals shown as what to do about them, "next page" links,
// a section that loads its own data.

import { ApiError, currentMember, currentSigner } from "./api.js";
import { h, link, notice, route } from "./dom.js";

/** What a refusal means for this visitor, as a notice. */
export function errorView(err) {
  if (!(err instanceof ApiError)) {
    return notice("error", h("strong", {}, "Could not read the node: "), String(err && err.message ? err.message : err));
  }
  const signer = currentSigner();
  const member = currentMember();
  if (err.status === 401 && !signer) {
    return notice("warn members-only",
      h("strong", {}, "Members only: load your key. "),
      "This is member data. Load your member key file with ",
      h("em", {}, "Load key file"),
      " at the top of the page; the key stays in this page and signs each request here. ",
      h("span", { class: "reason" }, `(The node says: ${err.reason})`));
  }
  if (err.status === 401) {
    return notice("error", h("strong", {}, "The node refused your key: "), err.reason,
      " Check that the key is an enrolled member's, in good standing, and that this "
      + "computer's clock is right.");
  }
  if (err.status === 403) {
    const roles = member && member.roles ? member.roles.join(", ") : "unknown";
    return notice("warn forbidden",
      h("strong", {}, `Your roles: ${roles}. `), "These records need another role: ", err.reason);
  }
  if (err.status === 404) return notice("info", h("strong", {}, "Not found. "), err.reason);
  if (err.status === 429 || err.status === 503) {
    return notice("warn", h("strong", {}, "The node is busy. "), err.reason, " Try again shortly.");
  }
  return notice("error", h("strong", {}, `Refused (${err.status} ${err.code}): `), err.reason);
}

/**
 * A section whose body is filled by `load()` (a promise of nodes); shows "Loading..."
 * first and the refusal if there is one.
 */
export function loading(title, load, { level = "h2", id } = {}) {
  const body = h("div", { class: "body", "aria-busy": "true" }, h("p", { class: "loading" }, "Loading..."));
  const sec = h("section", { class: "panel", id }, title ? h(level, {}, title) : null, body);
  Promise.resolve().then(load).then((content) => {
    body.replaceChildren(...[content].flat().filter(Boolean));
  }, (err) => {
    body.replaceChildren(errorView(err));
  }).finally(() => body.removeAttribute("aria-busy"));
  return sec;
}

/** "Next page" (and "first page") links for a paged list. */
export function pager(path, params, next) {
  const links = [];
  if (params.cursor) links.push(link(route(path, { ...params, cursor: undefined }), "First page"));
  if (next) links.push(link(route(path, { ...params, cursor: next }), "Next page"));
  else links.push(h("span", { class: "end" }, "End of the list."));
  return h("nav", { class: "pager", "aria-label": "Pages" }, links);
}

/** The page's title (h1, focused after navigation) and an optional lead paragraph. */
export function title(text, lead) {
  return [h("h1", { tabindex: "-1" }, text), lead ? h("p", { class: "lead" }, lead) : null];
}

/** Save `text` as a file named `name` (a download made in the page: nothing is sent). */
export function download(name, text, type = "text/plain") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name, class: "visually-hidden" }, name);
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/**
 * `fn` (async) run at most once per `minMs` however often it is asked for: a busy
 * chain commits many blocks a second, and each page reads at most once a second.
 */
export function coalesce(fn, minMs = 1000) {
  let running = false;
  let pending = false;
  let lastRun = 0;
  async function run() {
    if (running) {
      pending = true;
      return;
    }
    running = true;
    try {
      const wait = lastRun + minMs - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      lastRun = Date.now();
      await fn();
    } finally {
      running = false;
      if (pending) {
        pending = false;
        run();
      }
    }
  }
  return run;
}
