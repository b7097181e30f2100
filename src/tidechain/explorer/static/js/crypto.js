// SHA-256 and Ed25519 signing in the browser: WebCrypto where the browser has it, else
// the receipt verifier's SHA-256 (static/verify/sha256.js) and the vendored
// @noble/ed25519 (static/vendor/; the verifier's ed25519.js only verifies, so signing
// imports the vendored package itself): WebCrypto exists only in secure contexts
// (HTTPS, or loopback), and some browsers lack its Ed25519.

import { concat, fromBase64Url, fromHex } from "./bytes.js";

/** RFC 8410's PKCS#8 wrapping of a 32-byte Ed25519 seed: this prefix, then the seed. */
const PKCS8_ED25519_PREFIX = fromHex("302e020100300506032b657004220420");
const SEED_BYTES = 32;

let webCryptoAllowed = true;

/** Allow (default) or forbid WebCrypto, e.g. to test the fallback. */
export function setWebCryptoAllowed(allowed) {
  webCryptoAllowed = allowed;
}

function subtleCrypto() {
  return webCryptoAllowed ? globalThis.crypto?.subtle : undefined;
}

let fallback = null;
/** The verifier's SHA-256 and the vendored @noble/ed25519 (with @noble/hashes' SHA-512,
 * so that it needs no WebCrypto either), loaded only when WebCrypto cannot do the job. */
async function fallbackCrypto() {
  if (!fallback) {
    fallback = Promise.all([
      import("../verify/sha256.js"),
      import("../vendor/noble-ed25519-3.2.0/index.js"),
      import("../vendor/noble-hashes-2.4.0/sha2.js"),
    ]).then(([hash, ed, sha2]) => {
      ed.hashes.sha512 = sha2.sha512;
      return { hash, ed };
    });
  }
  return fallback;
}

/** SHA-256 of `bytes` (a Uint8Array). */
export async function sha256(bytes) {
  const subtle = subtleCrypto();
  if (subtle) return new Uint8Array(await subtle.digest("SHA-256", bytes));
  const { hash } = await fallbackCrypto();
  return hash.sha256(bytes);
}

/**
 * A signer for the 32-byte Ed25519 `seed`: {publicKey: Uint8Array(32), via, sign(bytes)}.
 * With WebCrypto the seed is imported as a non-extractable key and not kept.
 */
export async function ed25519Signer(seed) {
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_BYTES) {
    throw new Error(`an Ed25519 seed is ${SEED_BYTES} bytes`);
  }
  const web = await webCryptoSigner(seed);
  if (web) return web;
  return fallbackSigner(seed);
}

async function webCryptoSigner(seed) {
  const subtle = subtleCrypto();
  if (!subtle) return null;
  const pkcs8 = concat(PKCS8_ED25519_PREFIX, seed);
  let exportable;
  let key;
  try {
    // Imported twice: once extractable, only to read the public key (JWK "x"), then
    // for signing, not extractable.
    exportable = await subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, true, ["sign"]);
    key = await subtle.importKey("pkcs8", pkcs8, { name: "Ed25519" }, false, ["sign"]);
  } catch {
    return null; // no Ed25519 in this browser's WebCrypto
  } finally {
    pkcs8.fill(0);
  }
  const jwk = await subtle.exportKey("jwk", exportable);
  const publicKey = fromBase64Url(jwk.x);
  return {
    publicKey,
    via: "WebCrypto",
    sign: async (data) => new Uint8Array(await subtle.sign({ name: "Ed25519" }, key, data)),
  };
}

async function fallbackSigner(seed) {
  const { ed } = await fallbackCrypto();
  const secret = seed.slice();
  const publicKey = ed.getPublicKey(secret);
  return {
    publicKey,
    via: "@noble/ed25519 (no Ed25519 in this browser's WebCrypto)",
    sign: async (data) => ed.sign(data, secret),
  };
}
