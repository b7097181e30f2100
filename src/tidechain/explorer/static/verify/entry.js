// Log entries (docs/encoding.md section 3.4), decoded as
// src/tidechain/ledger/types.py `LogEntry.decode` does, and what an evidence deposit's
// entry proves, as `deposit_proven` in src/tidechain/client/verify.py says it.
//
//   entry = {"v": 1, "tx": {"body": <body bytes>, "sig": <64 bytes>},
//            "height": uint, "time": uint (ms), "result": {...}}
//
// The sender signed "tidechain/tx/v1\n" || body bytes; the body is a byte string inside
// the envelope, so the signature is checked over the exact bytes that were signed.

import {
  MAX_META_ENTRIES, MAX_META_KEY_BYTES, MAX_META_VALUE_BYTES, MAX_TX_BYTES,
} from "./limits.js";
import { badArgument, badSignature, decodeError, proofError, tooLarge } from "./errors.js";
import { concatBytes, toHex } from "./bytes.js";
import { utf8Encode, utf8Size } from "./text.js";
import { decode } from "./cbor.js";
import { sha256 } from "./sha256.js";
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, signatureProblem } from "./ed25519.js";

export const FORMAT_VERSION = 1n;
export const HASH_BYTES = 32;
export const TX_SIGNING_DOMAIN = utf8Encode("tidechain/tx/v1\n");
const MIN_NONCE_BYTES = 8;
const MAX_NONCE_BYTES = 32;
/** Contract and method names: 1..64 ASCII characters. */
const MAX_IDENT_BYTES = 64;

export const EVIDENCE_CONTRACT = "evidence";
const EVIDENCE_METHODS = new Set(["deposit", "amend"]);
export const DIGEST_BYTES = 32;
/** Genesis.origin: `tidechain/<network>/<first 8 bytes of the chain id, hex>`. */
const ORIGIN_CHAIN_PREFIX = /^tidechain\/[^/]+\/([0-9a-f]{16})$/;

// --- field readers, one rule each, as in ledger/types.py ------------------------------

const KINDS = {
  map: (v) => v instanceof Map,
  bytes: (v) => v instanceof Uint8Array,
  str: (v) => typeof v === "string",
  int: (v) => typeof v === "bigint", // never a boolean: CBOR true is not an integer
  bool: (v) => typeof v === "boolean",
  list: (v) => Array.isArray(v),
};
const KIND_NAMES = { map: "dict", bytes: "bytes", str: "str", int: "int", bool: "bool", list: "list" };

function requireMap(value, what) {
  if (!KINDS.map(value)) throw decodeError(`${what} must be a CBOR map`);
  return value;
}

function field(m, name, kind, what) {
  requireMap(m, what);
  if (!m.has(name)) throw decodeError(`${what}: missing field '${name}'`);
  const value = m.get(name);
  if (!KINDS[kind](value)) throw decodeError(`${what}: field '${name}' must be ${KIND_NAMES[kind]}`);
  return value;
}

function exactKeys(m, keys, what) {
  const extra = [...m.keys()].filter((k) => typeof k !== "string" || !keys.includes(k));
  if (extra.length > 0) throw decodeError(`${what}: unknown field(s) ${extra.map(String).join(", ")}`);
}

function hash32(m, name, what) {
  const value = field(m, name, "bytes", what);
  if (value.length !== HASH_BYTES) throw decodeError(`${what}: field '${name}' must be ${HASH_BYTES} bytes`);
  return value;
}

function uint(m, name, what) {
  const value = field(m, name, "int", what);
  if (value < 0n) throw decodeError(`${what}: field '${name}' must be non-negative`);
  return value;
}

function ident(m, name, what) {
  const value = field(m, name, "str", what);
  if (!value || utf8Size(value) > MAX_IDENT_BYTES || !/^[\x00-\x7f]*$/.test(value)) {
    throw decodeError(`${what}: field '${name}' must be 1..${MAX_IDENT_BYTES} ASCII chars`);
  }
  return value;
}

function formatVersion(m, what) {
  const version = uint(m, "v", what);
  if (version !== FORMAT_VERSION) throw decodeError(`${what}: unsupported format version ${version}`);
}

// --- structures -----------------------------------------------------------------------

function txBodyFromCbor(value) {
  const what = "transaction body";
  const m = requireMap(value, what);
  exactKeys(m, ["v", "chain", "from", "nonce", "exp", "contract", "method", "args"], what);
  formatVersion(m, what);
  const sender = field(m, "from", "bytes", what);
  if (sender.length !== PUBLIC_KEY_BYTES) {
    throw decodeError(`${what}: 'from' must be a ${PUBLIC_KEY_BYTES}-byte Ed25519 key`);
  }
  const nonce = field(m, "nonce", "bytes", what);
  if (nonce.length < MIN_NONCE_BYTES || nonce.length > MAX_NONCE_BYTES) {
    throw decodeError(`${what}: nonce must be ${MIN_NONCE_BYTES}..${MAX_NONCE_BYTES} bytes`);
  }
  const args = field(m, "args", "map", what);
  return {
    chainId: hash32(m, "chain", what),
    sender,
    nonce,
    expiresMs: uint(m, "exp", what),
    contract: ident(m, "contract", what),
    method: ident(m, "method", what),
    args,
  };
}

async function signedTxFromCbor(value) {
  const what = "transaction";
  const m = requireMap(value, what);
  exactKeys(m, ["body", "sig"], what);
  const bodyBytes = field(m, "body", "bytes", what);
  if (bodyBytes.length > MAX_TX_BYTES) {
    throw tooLarge(`${what}: body is ${bodyBytes.length} bytes, limit ${MAX_TX_BYTES}`);
  }
  const signature = field(m, "sig", "bytes", what);
  if (signature.length !== SIGNATURE_BYTES) {
    throw decodeError(`${what}: signature must be ${SIGNATURE_BYTES} bytes`);
  }
  const body = txBodyFromCbor(decode(bodyBytes));
  return { bodyBytes, signature, body, txId: await sha256(bodyBytes) };
}

function eventFromCbor(value) {
  const what = "event";
  const m = requireMap(value, what);
  exactKeys(m, ["type", "data"], what);
  return { kind: field(m, "type", "str", what), data: field(m, "data", "map", what) };
}

function resultFromCbor(value) {
  const what = "result";
  const m = requireMap(value, what);
  if (field(m, "ok", "bool", what)) {
    exactKeys(m, ["ok", "events"], what);
    return { ok: true, events: field(m, "events", "list", what).map(eventFromCbor) };
  }
  exactKeys(m, ["ok", "error", "reason"], what);
  return {
    ok: false, events: [], error: field(m, "error", "str", what), reason: field(m, "reason", "str", what),
  };
}

/**
 * Decode a log entry's bytes strictly. Returns {tx: {bodyBytes, signature, body,
 * txId}, height, timeMs, result: {ok, events, error?, reason?}}; integers are BigInt.
 */
export async function decodeLogEntry(bytes) {
  const what = "log entry";
  const m = requireMap(decode(bytes), what);
  exactKeys(m, ["v", "tx", "height", "time", "result"], what);
  formatVersion(m, what);
  const tx = await signedTxFromCbor(field(m, "tx", "map", what));
  return {
    tx,
    height: uint(m, "height", what),
    timeMs: uint(m, "time", what),
    result: resultFromCbor(field(m, "result", "map", what)),
  };
}

/** Throw BadSignature unless the sender signed the body (SignedTx.verify_signature). */
export async function verifyTxSignature(tx) {
  const message = concatBytes(TX_SIGNING_DOMAIN, tx.bodyBytes);
  const problem = await signatureProblem(tx.body.sender, message, tx.signature);
  if (problem !== null) throw badSignature(problem);
}

/** The origin names the chain; an entry of another chain cannot be this log's. */
export function checkEntryChain(entry, origin) {
  const match = ORIGIN_CHAIN_PREFIX.exec(origin);
  if (match !== null && toHex(entry.tx.body.chainId.subarray(0, 8)) !== match[1]) {
    throw proofError(`the transaction belongs to chain ${toHex(entry.tx.body.chainId)}, ` +
      `not to the log ${JSON.stringify(origin)}`);
  }
}

/** Metadata: at most MAX_META_ENTRIES short text pairs (evidence `validate_meta`). */
function validateMeta(meta) {
  if (meta === undefined || meta === null) return new Map();
  if (!(meta instanceof Map)) throw badArgument("'meta' must be a map of text to text");
  if (meta.size > MAX_META_ENTRIES) throw badArgument(`'meta' has more than ${MAX_META_ENTRIES} entries`);
  for (const [key, value] of meta) {
    if (typeof key !== "string" || typeof value !== "string") {
      throw badArgument("'meta' keys and values must be text");
    }
    if (!key || utf8Size(key) > MAX_META_KEY_BYTES) {
      throw badArgument(`'meta' key ${JSON.stringify(key.slice(0, 20))} must be 1..${MAX_META_KEY_BYTES} bytes`);
    }
    if (utf8Size(value) > MAX_META_VALUE_BYTES) {
      throw badArgument(`'meta' value of ${JSON.stringify(key)} exceeds ${MAX_META_VALUE_BYTES} bytes`);
    }
  }
  return meta;
}

/**
 * What an evidence deposit's entry states: {digest, meta (Map), amends (BigInt or
 * null)}; ProofError unless it is a successful evidence.deposit or evidence.amend.
 */
export function depositArgs(entry) {
  const body = entry.tx.body;
  if (body.contract !== EVIDENCE_CONTRACT || !EVIDENCE_METHODS.has(body.method)) {
    throw proofError(`the entry is a ${body.contract}.${body.method} transaction, ` +
      "not an evidence deposit");
  }
  if (!entry.result.ok) {
    throw proofError(`the deposit was refused on chain (${entry.result.error}: ` +
      `${entry.result.reason}); it proves nothing`);
  }
  const digest = body.args.get("digest");
  if (!(digest instanceof Uint8Array) || digest.length !== DIGEST_BYTES) {
    throw proofError("the deposit carries no 32-byte digest");
  }
  const meta = validateMeta(body.args.get("meta"));
  const amends = body.method === "amend" ? (body.args.get("of") ?? null) : null;
  if (amends !== null && typeof amends !== "bigint") {
    throw proofError("the amendment does not name the deposit it amends");
  }
  return { digest, meta, amends };
}

/** Whether the deposit names co-signers (evidence v2): its result says so. */
export function isCosigned(entry) {
  return entry.result.events.some((e) => e.kind === "deposited" && e.data.has("slots"));
}
