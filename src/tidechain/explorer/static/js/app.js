// The explorer: a single page whose routes live in the address's hash (#/blocks,
// #/tx/<id>, ...), so the node serves one HTML file and every link is a real link
// (keyboard, middle-click, bookmarks). Each page module renders what the API answers.

import { ApiError, apiPath, currentSigner, getJSON, onIdentity, setMember, setSigner } from "./api.js";
import { h, replace, route } from "./dom.js";
import { loadKey, MAX_KEY_FILE_BYTES } from "./keyfile.js";
import { liveMode, onCommit, onMode, startLive } from "./live.js";
import { checkNow } from "./monitor.js";
import { coalesce, errorView } from "./ui.js";

import * as home from "./pages/home.js";
import * as chain from "./pages/chain.js";
import * as deposits from "./pages/deposits.js";
import * as verify from "./pages/verify.js";
import * as log from "./pages/log.js";
import * as members from "./pages/members.js";
import * as gov from "./pages/gov.js";
import * as invoices from "./pages/invoices.js";
import * as scf from "./pages/scf.js";
import * as contracts from "./pages/contracts.js";

/** First path segment -> page: render(scope, params, ...rest of the path). */
const PAGES = {
  "": home.render,
  blocks: chain.blocks,
  block: chain.block,
  txs: chain.txs,
  tx: chain.tx,
  entry: chain.entry,
  search: chain.search,
  deposits: deposits.list,
  deposit: deposits.one,
  verify: verify.render,
  log: log.render,
  members: members.list,
  member: members.one,
  validators: members.validators,
  gov: gov.render,
  invoices: invoices.list,
  invoice: invoices.one,
  scf: scf.render,
  contracts: contracts.render,
};

const LOG_CHECK_MS = 2000; // the log watch compares checkpoints at most this often
let scope = null;

/** What a page may hold while it is shown; released when the visitor leaves it. */
class Scope {
  constructor() {
    this.cleanups = [];
  }

  onCommit(fn) {
    this.cleanups.push(onCommit(fn));
  }

  onLeave(fn) {
    this.cleanups.push(fn);
  }

  close() {
    for (const fn of this.cleanups.splice(0)) fn();
  }
}

function parseHash() {
  const hash = window.location.hash || "#/";
  const [path, query = ""] = hash.slice(2).split("?", 2);
  const segments = path.split("/").map((s) => decodeURIComponent(s));
  return { segments, params: Object.fromEntries(new URLSearchParams(query)) };
}

function render({ focus }) {
  const hash = window.location.hash;
  if (hash && !hash.startsWith("#/")) {
    // An in-page anchor (the skip link): move there, keep the page.
    const target = document.getElementById(hash.slice(1));
    if (target) target.focus();
    return;
  }
  const { segments, params } = parseHash();
  const page = PAGES[segments[0]];
  const main = document.getElementById("main");
  if (scope) scope.close();
  scope = new Scope();
  markNav(segments[0]);
  if (!page) {
    replace(main, h("h1", { tabindex: "-1" }, "No such page"),
      h("p", {}, h("a", { href: "#/" }, "Back to the start")));
  } else {
    try {
      replace(main, page(scope, params, ...segments.slice(1)));
    } catch (err) {
      replace(main, errorView(err));
    }
  }
  const heading = main.querySelector("h1");
  document.title = heading ? `${heading.textContent} · tidechain explorer` : "tidechain explorer";
  if (focus && heading) heading.focus();
}

function markNav(first) {
  for (const a of document.querySelectorAll("nav.nav a")) {
    const target = a.getAttribute("href").slice(2).split(/[/?]/)[0];
    if (target === first) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

// --- identity: the key file, in memory only ---------------------------------------

function showIdentity(message) {
  const who = document.getElementById("whoami");
  const forgetButton = document.getElementById("key-forget");
  const signer = currentSigner();
  forgetButton.hidden = !signer;
  if (message) {
    replace(who, message);
    return;
  }
  if (!signer) replace(who, "Anonymous: public data only.");
}

async function onKeyFile(event) {
  const input = event.target;
  const file = input.files && input.files[0];
  input.value = "";
  if (!file) return;
  if (file.size > MAX_KEY_FILE_BYTES) {
    showIdentity(h("span", { class: "bad" }, `${file.name} is not a key file (too large).`));
    return;
  }
  let signer;
  try {
    signer = await loadKey(await file.text());
  } catch (err) {
    showIdentity(h("span", { class: "bad" }, `${file.name}: ${err.message}`));
    return;
  }
  setSigner(signer);
  showIdentity(`Checking ${signer.name}...`);
  try {
    const record = await getJSON(apiPath("/v1/apps/members/member", { key: signer.publicKeyHex }));
    setMember(record);
    showIdentity(h("span", { class: "member" },
      "Signed in as ", h("strong", { id: "member-name" }, record.name), ` (${record.org}); roles: `,
      h("strong", { id: "member-roles" }, record.roles.join(", ")), `; status ${record.status}. `,
      h("span", { class: "hint" }, `Signing with ${signer.via}.`)));
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      setSigner(null);
      showIdentity(h("span", { class: "bad" }, `The node refused this key: ${err.reason}`));
    } else {
      showIdentity(h("span", {}, `Signed in with key ${signer.name}; `, errorView(err)));
    }
  }
  render({ focus: false });
}

function forgetKey() {
  setSigner(null);
  showIdentity();
  render({ focus: false });
}

// --- the header: network and live height ---------------------------------------------

let headHeight = null;
function showHead(commit) {
  if (commit) headHeight = commit.height;
  if (headHeight === null) return;
  const via = { stream: "live (server-sent events)", polling: "polling the status" }[liveMode()];
  replace(document.getElementById("live"), `Height ${headHeight}${via ? `, ${via}` : ""}.`);
}

async function showNetwork() {
  try {
    const status = await getJSON("/v1/status");
    replace(document.getElementById("network"), `${status.network} · ${status.node}`);
    if (headHeight === null) showHead({ height: status.height });
  } catch {
    // the page works without it
  }
}

function onSearch(event) {
  event.preventDefault();
  const q = new FormData(event.target).get("q").trim();
  if (q) window.location.hash = route("search", { q });
}

function start() {
  document.getElementById("key-file").addEventListener("change", onKeyFile);
  document.getElementById("key-forget").addEventListener("click", forgetKey);
  document.getElementById("search").addEventListener("submit", onSearch);
  onIdentity(() => showIdentity());
  window.addEventListener("hashchange", () => render({ focus: true }));
  onCommit(showHead);
  onMode(() => showHead(null));
  onCommit(coalesce(() => checkNow(), LOG_CHECK_MS));
  render({ focus: false });
  showNetwork();
  checkNow();
  startLive();
}

start();
