// Signed reads in the browser: tidechain's profile of RFC 9421 HTTP Message Signatures,
// exactly as src/tidechain/identity/httpsig.py states it and the node verifies it
// (docs/access.md, "A signed request without our code"):
//
//   label `tide`; covered components "@method" "@authority" "@path" "@query", in that
//   order and no others; parameters created, keyid, alg="ed25519", expires, nonce,
//   tag="tidechain", serialised in that order (the order the SDK's library writes them,
//   so the headers are byte for byte the SDK's); keyid the member's public key as 64
//   lowercase hex digits; whole seconds; 0 < expires - created <= 300; a fresh nonce of
//   1..64 printable ASCII characters per request.

import { toBase64, toHex, utf8 } from "./bytes.js";

export const LABEL = "tide";
export const TAG = "tidechain";
export const ALGORITHM = "ed25519";
export const COVERED_COMPONENTS = ["@method", "@authority", "@path", "@query"];
export const DEFAULT_LIFETIME_S = 60; // core/limits.py DEFAULT_SIGNATURE_LIFETIME_S
export const MAX_LIFETIME_S = 300; // core/limits.py MAX_SIGNATURE_LIFETIME_S
export const MAX_NONCE_CHARS = 64; // core/limits.py MAX_NONCE_CHARS
const NONCE_BYTES = 16; // 128 random bits, as the SDK's nonces

/** A fresh nonce: 16 random bytes as 32 hex digits. */
export function freshNonce() {
  return toHex(crypto.getRandomValues(new Uint8Array(NONCE_BYTES)));
}

/** An RFC 8941 sf-string. */
function sfString(value) {
  if (!/^[\x20-\x7e]*$/.test(value)) throw new Error("not a structured-field string");
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

function checkNonce(nonce) {
  if (!nonce) throw new Error("nonce is empty: each signed read needs a fresh nonce");
  if (nonce.length > MAX_NONCE_CHARS) throw new Error(`nonce is longer than ${MAX_NONCE_CHARS} characters`);
  if (!/^[\x20-\x7e]+$/.test(nonce)) throw new Error("nonce must be printable ASCII");
}

/** The value of `@signature-params`, also the Signature-Input's member value. */
export function signatureParams({ createdS, expiresS, nonce, keyid }) {
  const components = COVERED_COMPONENTS.map((c) => `"${c}"`).join(" ");
  return `(${components});created=${createdS};keyid=${sfString(keyid)};alg=${sfString(ALGORITHM)}`
    + `;expires=${expiresS};nonce=${sfString(nonce)};tag=${sfString(TAG)}`;
}

/** The four covered components' values of a request to the absolute `url`. */
export function components(method, url) {
  const u = new URL(url);
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("only http(s) URLs are signed");
  if (method !== method.toUpperCase()) throw new Error("the method must be upper case");
  // URL.host is lower case and omits the scheme's default port, as RFC 9421 section
  // 2.2.3 wants; pathname is at least "/"; "@query" is "?" alone when there is none.
  return {
    "@method": method,
    "@authority": u.host,
    "@path": u.pathname,
    "@query": `?${u.search.slice(1)}`,
  };
}

/** The RFC 9421 signature base (section 2.5): what the key signs. */
export function signatureBase(method, url, params) {
  const values = components(method, url);
  const lines = COVERED_COMPONENTS.map((c) => `"${c}": ${values[c]}`);
  lines.push(`"@signature-params": ${params}`);
  return lines.join("\n");
}

/**
 * The Signature-Input and Signature headers that make `method url` a signed read by
 * `signer` ({publicKeyHex, sign(bytes) -> Promise<Uint8Array>}).
 */
export async function signHeaders(method, url, signer, {
  createdS, nonce = freshNonce(), lifetimeS = DEFAULT_LIFETIME_S,
} = {}) {
  if (!Number.isInteger(createdS) || createdS < 0) throw new Error("created must be whole seconds >= 0");
  if (!Number.isInteger(lifetimeS) || lifetimeS < 1 || lifetimeS > MAX_LIFETIME_S) {
    throw new Error(`signature lifetime must be 1..${MAX_LIFETIME_S} s, not ${lifetimeS}`);
  }
  checkNonce(nonce);
  if (!/^[0-9a-f]{64}$/.test(signer.publicKeyHex)) throw new Error("keyid must be 64 lowercase hex digits");
  const params = signatureParams({
    createdS, expiresS: createdS + lifetimeS, nonce, keyid: signer.publicKeyHex,
  });
  const signature = await signer.sign(utf8(signatureBase(method, url, params)));
  return {
    "Signature-Input": `${LABEL}=${params}`,
    Signature: `${LABEL}=:${toBase64(signature)}:`,
  };
}
