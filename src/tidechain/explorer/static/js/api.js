// Reading the node's API from the browser with the visitor's own rights: every request
// goes to this page's own origin, signed with the member key loaded in memory (if any)
// by httpsig.js. The page shows what the API answers; refusals become ApiError.

import { signHeaders } from "./httpsig.js";

let signer = null;
let member = null;
let clockOffsetS = 0;
const listeners = new Set();

/** An API refusal: `status`, the node's `code` and `reason`. */
export class ApiError extends Error {
  constructor(status, code, reason, path) {
    super(`${status} ${code}: ${reason}`);
    this.status = status;
    this.code = code;
    this.reason = reason;
    this.path = path;
  }
}

/** The key that signs requests ({name, publicKeyHex, via, sign}) or null. */
export const currentSigner = () => signer;

/** The loaded key's member record as the node answers it, or null. */
export const currentMember = () => member;

export function setSigner(next) {
  signer = next;
  member = null;
  for (const fn of listeners) fn();
}

export function setMember(record) {
  member = record;
  for (const fn of listeners) fn();
}

/** Call `fn` whenever the identity changes. */
export function onIdentity(fn) {
  listeners.add(fn);
}

// A signature dated by a clock more than 30 s off the node's is refused: follow the
// node's clock as its Date headers tell it (whole seconds).
function noteServerClock(response) {
  const date = Date.parse(response.headers.get("Date") || "");
  if (!Number.isNaN(date)) clockOffsetS = Math.round((date - Date.now()) / 1000);
}

function nowS() {
  return Math.floor(Date.now() / 1000) + clockOffsetS;
}

/** fetch() of an API path on this origin, signed when a key is loaded. */
export async function apiFetch(path, { headers = {}, signal } = {}) {
  const url = new URL(path, window.location.origin).href;
  const all = { ...headers };
  if (signer) Object.assign(all, await signHeaders("GET", url, signer, { createdS: nowS() }));
  const response = await fetch(url, {
    method: "GET", headers: all, signal, credentials: "omit", cache: "no-store",
    redirect: "error",
  });
  noteServerClock(response);
  return response;
}

async function refusal(response, path) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = { error: "http", reason: response.statusText || "request refused" };
  }
  return new ApiError(response.status, body.error || "http", body.reason || "", path);
}

/**
 * JSON.parse, except that integers beyond 2^53 (certificate serials are 63-bit) are
 * kept exact, as decimal strings, instead of being rounded to the nearest double.
 */
export function parseJSON(text) {
  const parts = [];
  let last = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22) { // a string: skip it, escapes included
      i += 1;
      while (i < n && text.charCodeAt(i) !== 0x22) i += text.charCodeAt(i) === 0x5c ? 2 : 1;
      i += 1;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) { // a number
      const start = i;
      i += 1;
      while (i < n && /[0-9.eE+-]/.test(text[i])) i += 1;
      const token = text.slice(start, i);
      if (/^-?[0-9]{16,}$/.test(token) && !Number.isSafeInteger(Number(token))) {
        parts.push(text.slice(last, start), `"${token}"`);
        last = i;
      }
    } else {
      i += 1;
    }
  }
  parts.push(text.slice(last));
  return JSON.parse(parts.join(""));
}

/** The JSON an API path answers; ApiError on a refusal. */
export async function getJSON(path, options) {
  const response = await apiFetch(path, options);
  if (!response.ok) throw await refusal(response, path);
  return parseJSON(await response.text());
}

/** The text an API path answers (checkpoints, receipts, trust files). */
export async function getText(path, options) {
  const response = await apiFetch(path, options);
  if (!response.ok) throw await refusal(response, path);
  return response.text();
}

/** An API path with its query parameters (unset ones left out). */
export function apiPath(path, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") query.set(k, String(v));
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}
