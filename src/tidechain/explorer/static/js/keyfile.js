// A member's key file, as `tide` writes it (client/files.py `write_key`, core/note.py
// `signer_key`): one line `PRIVATE+KEY+<name>+<key id, 8 hex>+<base64(0x01 || seed)>`,
// the key id being SHA-256(name || "\n" || 0x01 || public key)[:4]. Parsed here exactly
// as `parse_signer_key` parses it, the key id checked against the derived public key.

import { concat, equal, fromBase64, fromHex, toHex, utf8 } from "./bytes.js";
import { ed25519Signer, sha256 } from "./crypto.js";

const PREFIX = "PRIVATE+KEY+";
const ED25519_TYPE = 0x01;
const KEY_BYTES = 32;
const KEY_ID_BYTES = 4;
const MAX_NAME_BYTES = 128; // core/limits.py MAX_NAME_BYTES
export const MAX_KEY_FILE_BYTES = 4096; // a key file is one line of under 300 bytes

function checkName(name) {
  if (!name) throw new Error("key name is empty");
  if (utf8(name).length > MAX_NAME_BYTES) throw new Error(`key name is longer than ${MAX_NAME_BYTES} bytes`);
  if (name.includes("+")) throw new Error("key name contains '+'");
  if (/[\s\p{Zs}\p{Zl}\p{Zp}]/u.test(name)) throw new Error("key name contains a space");
  if (/[\p{Cc}\p{Cs}]/u.test(name)) throw new Error("key name contains a control character");
}

/** The parts of a key file's text: {name, keyId (4 bytes), seed (32 bytes)}; throws. */
export function parseKeyText(text) {
  const line = text.trim();
  if (!line.startsWith(PREFIX)) {
    throw new Error("not a tidechain key file: it must start with PRIVATE+KEY+ (the file `tide` "
      + "writes, e.g. net/client.key or the --new-key file of `tide member enrol`)");
  }
  const rest = line.slice(PREFIX.length);
  const first = rest.indexOf("+");
  const second = first < 0 ? -1 : rest.indexOf("+", first + 1);
  if (first < 0 || second < 0) throw new Error("signer key: expected name+keyid+key");
  const name = rest.slice(0, first);
  const idHex = rest.slice(first + 1, second);
  const keyText = rest.slice(second + 1);
  checkName(name);
  if (!/^[0-9a-fA-F]{8}$/.test(idHex)) throw new Error("signer key: key id must be 8 hex digits");
  const typed = fromBase64(keyText);
  if (!typed.length || typed[0] !== ED25519_TYPE) {
    throw new Error("signer key: unsupported signature type (only Ed25519, 0x01)");
  }
  if (typed.length !== 1 + KEY_BYTES) throw new Error(`signer key: Ed25519 key must be ${KEY_BYTES} bytes`);
  const seed = typed.slice(1);
  typed.fill(0);
  return { name, keyId: fromHex(idHex), seed };
}

/** The note key id of `publicKey` under `name`. */
export async function keyId(name, publicKey) {
  const digest = await sha256(concat(utf8(name), utf8("\n"), Uint8Array.of(ED25519_TYPE), publicKey));
  return digest.slice(0, KEY_ID_BYTES);
}

/**
 * The member signer of a key file's text: {name, publicKeyHex, via, sign(bytes)}.
 * Throws with the reason when the file is not a valid key.
 */
export async function loadKey(text) {
  const parts = parseKeyText(text);
  try {
    const signer = await ed25519Signer(parts.seed);
    const id = await keyId(parts.name, signer.publicKey);
    if (!equal(id, parts.keyId)) throw new Error(`signer key ${JSON.stringify(parts.name)}: key id does not match the key`);
    return { name: parts.name, publicKeyHex: toHex(signer.publicKey), via: signer.via, sign: signer.sign };
  } finally {
    parts.seed.fill(0);
  }
}
