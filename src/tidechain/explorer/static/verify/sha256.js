// SHA-256: the browser's own (WebCrypto) where the page runs in a secure context, else
// the vendored pure-JS @noble/hashes (a page opened from an insecure origin has no
// crypto.subtle). Both give the same digest; tests run both.

import { sha256 as nobleSha256 } from "../vendor/noble-hashes-2.4.0/sha2.js";

let webCryptoAllowed = true;
let lastBackend = null;

/** Allow (default) or forbid WebCrypto, e.g. to test the fallback. */
export function setWebCryptoAllowed(allowed) {
  webCryptoAllowed = allowed;
}

/** "webcrypto" or "noble": which implementation computed the last digest. */
export function sha256Backend() {
  return lastBackend;
}

function subtle() {
  return webCryptoAllowed ? globalThis.crypto?.subtle : undefined;
}

/** SHA-256 of `bytes` (a Uint8Array), as a 32-byte Uint8Array. */
export async function sha256(bytes) {
  const engine = subtle();
  if (engine !== undefined) {
    lastBackend = "webcrypto";
    return new Uint8Array(await engine.digest("SHA-256", bytes));
  }
  lastBackend = "noble";
  return nobleSha256(bytes);
}
