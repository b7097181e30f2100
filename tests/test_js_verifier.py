"""The in-browser receipt verifier (src/tidechain/explorer/static/verify/) against the
Python one it must agree with (client/verify.py, libsodium through PyNaCl).

Receipts are real: one comes from a real node (`tide node start`, `tide deposit`), the
others are built in-process exactly as a node builds them (log entries hashed into an
RFC 6962 tree by core.merkle, checkpoints signed by core.checkpoint, formatted by
core.receipt). Forgeries are built byte by byte: a checkpoint "signed" by a small-order
key, a transaction "signed" by one, signatures with a small-order R, and keys with a
torsion component, where Ed25519 engines disagree.

The JavaScript runs under Node.js (one long-lived process reading JSON lines, importing
the modules by file URL), twice for each case: with WebCrypto, and with the pure-JS
fallback (@noble, vendored) forced. The standalone verify.html runs in Debian's
chromium through Playwright. Both tools are skipped with a message when missing, and
fail the run under CI=true.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.nodes import running_node, tide
from tidechain.client.txbuilder import amend_args, call_tx, deposit_tx
from tidechain.client.verify import verify_deposit_receipt
from tidechain.core import cbor, limits, merkle
from tidechain.core.checkpoint import Checkpoint, sign_checkpoint
from tidechain.core.crypto import SigningKey, sha256
from tidechain.core.errors import Rejected
from tidechain.core.note import Note, NoteSignature, Signer, Verifier, key_id
from tidechain.core.proofset import format_proof_set
from tidechain.core.receipt import Receipt, format_receipt
from tidechain.core.trust import SizeRange, Trust, format_trust
from tidechain.explorer import STATIC_DIR
from tidechain.explorer.verify_html import (
    ENTRY_MODULE,
    build_verify_html,
    inlined_modules,
    verify_html_sha256,
)
from tidechain.ledger.types import (
    TX_SIGNING_DOMAIN,
    Event,
    Genesis,
    GenesisValidator,
    LogEntry,
    SignedTx,
    TxBody,
    TxResult,
)

ROOT = Path(__file__).resolve().parent.parent
VERIFY_DIR = STATIC_DIR / "verify"
VENDOR_DIR = STATIC_DIR / "vendor"
VECTORS = json.loads((ROOT / "docs" / "vectors" / "encoding.json").read_text())
DOC = ROOT / "docs" / "verify-html.md"
NODE = shutil.which("node")
CHROMIUM = Path("/usr/bin/chromium")
IN_CI = os.environ.get("CI") == "true"
ENGINES = [pytest.param(True, id="webcrypto"), pytest.param(False, id="noble")]


def need(tool: str, present: bool) -> None:
    """Skip without `tool`, except under CI, where its absence is a failure."""
    if present:
        return
    if IN_CI:
        pytest.fail(f"{tool} is required under CI=true")
    pytest.skip(f"{tool} is not installed")


# --- the Node.js runner --------------------------------------------------------------------

RUNNER = r"""
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
const dir = process.env.TIDE_STATIC_DIR;
const load = (p) => import(pathToFileURL(`${dir}/${p}`).href);
const verify = await load("verify/verify.js");
const cbor = await load("verify/cbor.js");
const ed = await load("verify/ed25519.js");
const entry = await load("verify/entry.js");
const limitsModule = await load("verify/limits.js");
const text = await load("verify/text.js");
const noble = await load("vendor/noble-ed25519-3.2.0/index.js");
const { sha512 } = await load("vendor/noble-hashes-2.4.0/sha2.js");
noble.hashes.sha512 = sha512;
const bundle = process.env.TIDE_BUNDLE
  ? (await import(pathToFileURL(process.env.TIDE_BUNDLE).href)).bundle : null;

const hex = (b) => Buffer.from(b).toString("hex");
const bytes = (h) => new Uint8Array(Buffer.from(h, "hex"));
const b64 = (s) => (s === null ? null : new Uint8Array(Buffer.from(s, "base64")));

// CBOR values as tagged JSON, the same form the Python side builds, so that 1, true
// and "1" never compare equal.
function tagged(v) {
  if (typeof v === "bigint") return { i: v.toString() };
  if (v instanceof Uint8Array) return { b: hex(v) };
  if (typeof v === "string") return { s: v };
  if (Array.isArray(v)) return { a: v.map(tagged) };
  if (v instanceof Map) return { m: [...v].map(([k, x]) => [tagged(k), tagged(x)]) };
  return v; // true, false, null
}

async function rawAccepts(pub, msg, sig) {
  let webcrypto;
  try {
    const key = await crypto.subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
    webcrypto = await crypto.subtle.verify({ name: "Ed25519" }, key, sig, msg);
  } catch (error) {
    webcrypto = `error: ${error.name}`;
  }
  const tryVerify = (opts) => {
    try { return noble.verify(sig, msg, pub, opts); } catch { return false; }
  };
  return { webcrypto, noble: tryVerify({}), noble_strict: tryVerify({ zip215: false }) };
}

const ops = {
  async verify(q) {
    const engine = q.bundle ? bundle : verify;
    engine.useWebCrypto(q.webcrypto);
    const result = await engine.verifyReceipt(b64(q.receipt), b64(q.trust), b64(q.document));
    return { ...result, backends: engine.cryptoBackends() };
  },
  async cbor(q) {
    try {
      return { ok: true, value: tagged(cbor.decode(bytes(q.hex))) };
    } catch (error) {
      if (error.name !== "Rejected") throw error;
      return { ok: false, code: error.code, reason: error.reason };
    }
  },
  async ed25519(q) {
    ed.setWebCryptoAllowed(q.webcrypto);
    const problem = await ed.signatureProblem(bytes(q.pub), bytes(q.msg), bytes(q.sig));
    return { problem, backend: ed.ed25519Backend() };
  },
  async raw(q) { return rawAccepts(bytes(q.pub), bytes(q.msg), bytes(q.sig)); },
  async entry(q) {
    const e = await entry.decodeLogEntry(bytes(q.hex));
    const problem = await ed.signatureProblem(e.tx.body.sender,
      new Uint8Array([...entry.TX_SIGNING_DOMAIN, ...e.tx.bodyBytes]), e.tx.signature);
    return {
      height: e.height.toString(), time: e.timeMs.toString(), tx_id: hex(e.tx.txId),
      body: hex(e.tx.bodyBytes), sig: hex(e.tx.signature), sender: hex(e.tx.body.sender),
      chain: hex(e.tx.body.chainId), call: `${e.tx.body.contract}.${e.tx.body.method}`,
      ok: e.result.ok, events: e.result.events.map((x) => x.kind), problem,
    };
  },
  async limits() {
    return Object.fromEntries(Object.entries(limitsModule).map(([k, v]) => [k, v.toString()]));
  },
  async pyspace() { return { chars: text.PY_SPACE }; },
  async smallOrder() {
    // The 8 points of order dividing 8: T8 * 0..7, T8 the order-8 point in the blocklist.
    const t8 = noble.Point.fromBytes(ed.SMALL_ORDER_ENCODINGS[2], false);
    const points = [];
    for (let p = noble.Point.ZERO, i = 0; i < 8; i++, p = p.add(t8)) points.push(p);
    const encodings = points.map((p) => p.toBytes());
    const negated = encodings.map((e) => { const c = e.slice(); c[31] ^= 0x80; return c; });
    return {
      distinct: new Set(encodings.map(hex)).size,
      all_small: points.every((p) => p.isSmallOrder()),
      blocked: [...encodings, ...negated].every((e) => ed.isSmallOrderEncoding(e)),
      base_allowed: ed.publicKeyProblem(noble.Point.BASE.toBytes()) === null,
    };
  },
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const q = JSON.parse(line);
  let answer;
  try {
    answer = await ops[q.op](q);
  } catch (error) {
    answer = { crashed: `${error.name}: ${error.message}\n${error.stack}` };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
"""


class Js:
    """One Node.js process running RUNNER; `call` sends a request and reads the answer."""

    def __init__(self, bundle: Path) -> None:
        assert NODE is not None
        env = {**os.environ, "TIDE_STATIC_DIR": str(STATIC_DIR), "TIDE_BUNDLE": str(bundle)}
        self.process = subprocess.Popen(
            [NODE, "--input-type=module", "-e", RUNNER], env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            stderr = self.process.stderr.read() if self.process.stderr else ""
            raise AssertionError(f"the Node.js runner died: {stderr}")
        answer: dict[str, Any] = json.loads(line)
        assert "crashed" not in answer, f"the JS verifier threw (a bug): {answer['crashed']}"
        return answer

    def verify(self, receipt: str | bytes, trust: str | bytes, document: bytes | None = None,
               *, webcrypto: bool = True, bundle: bool = False) -> dict[str, Any]:
        def b64(data: str | bytes | None) -> str | None:
            if data is None:
                return None
            raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
            return base64.b64encode(raw).decode()
        return self.call("verify", receipt=b64(receipt), trust=b64(trust),
                         document=b64(document), webcrypto=webcrypto, bundle=bundle)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def js(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Js]:
    need("Node.js", NODE is not None)
    # The standalone page's script, minus the page: every module inlined the way
    # verify.html inlines them, with verify.js's exports exported for the runner.
    script, name = inlined_modules("verify/verify.js")
    bundle = tmp_path_factory.mktemp("bundle") / "bundle.mjs"
    bundle.write_text(f"{script}\nexport const bundle = {name};\n")
    runner = Js(bundle)
    yield runner
    runner.close()


# --- receipts, built as a node builds them ----------------------------------------------

NETWORK = "jsnet"
GENESIS_TIME_MS = 1_767_225_600_000
BLOCK_TIME_MS = GENESIS_TIME_MS + 61_000
DOCUMENT = b"shipping tally report #42: 1,200 cartons, Yangshan terminal\n"
DIGEST = sha256(DOCUMENT)
META = {"kind": "tally", "vessel": "MSC Aurora"}
DEPOSITOR = SigningKey(sha256(b"js depositor"))


def validators(count: int, tag: str = "") -> list[Signer]:
    return [Signer(f"{NETWORK}/node{i}", SigningKey(sha256(f"js-v{i}{tag}".encode())))
            for i in range(count)]


VALIDATORS = validators(4)
GENESIS = Genesis(NETWORK, GENESIS_TIME_MS,
                  tuple(GenesisValidator(s.name, s.key.public_key) for s in VALIDATORS))
CHAIN_ID = GENESIS.chain_id
ORIGIN = GENESIS.origin
WITNESS = Signer("witness.example/log", SigningKey(sha256(b"js witness")))


def entry_of(tx: SignedTx, ok: bool = True, height: int = 3,
             events: tuple[Event, ...] | None = None) -> bytes:
    if ok:
        result = TxResult(True, events if events is not None else
                          (Event("deposited", {"digest": tx.body.args.get("digest")}),))
    else:
        result = TxResult(False, (), "bad_argument", "'meta' keys and values must be text")
    return LogEntry(tx, height, BLOCK_TIME_MS, result).encode()


def deposit(digest: bytes = DIGEST, nonce: int = 0, meta: dict[str, str] | None = None,
            key: SigningKey = DEPOSITOR) -> SignedTx:
    return deposit_tx(key, CHAIN_ID, digest, META if meta is None else meta,
                      now_ms=GENESIS_TIME_MS, nonce=nonce.to_bytes(8, "big"))


def fillers(count: int, start: int = 1000) -> list[bytes]:
    return [entry_of(deposit(sha256(b"filler %d" % i), nonce=start + i), height=1 + i // 3)
            for i in range(count)]


def tree(entries: list[bytes]) -> tuple[merkle.MemoryNodeStore, bytes]:
    store = merkle.MemoryNodeStore()
    frontier = merkle.CompactRange()
    for entry in entries:
        for level, position, node in frontier.append(merkle.leaf_hash(entry)):
            store.put(level, position, node)
    return store, frontier.root()


def receipt_with_note(entries: list[bytes], index: int, note: str) -> str:
    store, _ = tree(entries)
    proof = merkle.inclusion_proof(store, index, len(entries))
    return format_receipt(Receipt(index, tuple(proof), note, entries[index]))


def receipt_for(entries: list[bytes], index: int, signers: list[Signer],
                origin: str = ORIGIN, witness: bool = False) -> str:
    _, root = tree(entries)
    note = sign_checkpoint(Checkpoint(origin, len(entries), root), signers)
    if witness:  # a signature by a key nobody trusts: ignored, as the spec requires
        body = Checkpoint(origin, len(entries), root).body()
        line = NoteSignature(WITNESS.name, WITNESS.key_id, WITNESS.sign(body.encode())).line()
        note += line
    return receipt_with_note(entries, index, note)


def trust_for(signers: list[Signer] | list[Verifier], quorum: int | None = None,
              origin: str | None = ORIGIN, ranges: tuple[SizeRange, ...] = (),
              comment: str | None = "validators of the jsnet test network") -> str:
    keys = [s.verifier() if isinstance(s, Signer) else s for s in signers]
    return format_trust(Trust.of(keys, quorum=quorum, origin=origin, ranges=ranges), comment)


ENTRIES = [*fillers(6), entry_of(deposit(), height=4), *fillers(4, start=2000)]
RECEIPT = receipt_for(ENTRIES, 6, VALIDATORS[:3])
TRUST = trust_for(VALIDATORS)


# --- a little Ed25519 arithmetic, to build what an honest signer never would ------------
# (affine Edwards coordinates; slow and simple, for tests only)

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D_CURVE = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
Point = tuple[int, int]
IDENTITY: Point = (0, 1)


def ed_add(a: Point, b: Point) -> Point:
    (x1, y1), (x2, y2) = a, b
    t = D_CURVE * x1 * x2 * y1 * y2 % P
    return ((x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P,
            (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P)


def ed_mul(k: int, point: Point) -> Point:
    result = IDENTITY
    while k:
        if k & 1:
            result = ed_add(result, point)
        point = ed_add(point, point)
        k >>= 1
    return result


def ed_encode(point: Point) -> bytes:
    x, y = point
    return (y | (x & 1) << 255).to_bytes(32, "little")


def ed_decode(data: bytes) -> Point:
    value = int.from_bytes(data, "little")
    y, sign = value & ((1 << 255) - 1), value >> 255
    u, v = (y * y - 1) % P, (D_CURVE * y * y + 1) % P
    x = pow(u * pow(v, P - 2, P), (P + 3) // 8, P)
    if (x * x - u * pow(v, P - 2, P)) % P:
        x = x * SQRT_M1 % P
    assert (x * x * v - u) % P == 0, "not a point"
    return (P - x if x & 1 != sign else x), y


BASE = ed_decode(bytes.fromhex("58" + "66" * 31))
ORDER8 = ed_decode(bytes.fromhex(
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"))
IDENTITY_ENCODING = ed_encode(IDENTITY)  # 01 00 .. 00
ZERO_S = bytes(32)


def secret_scalar(seed: bytes) -> int:
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return int.from_bytes(h, "little")


def challenge(r: bytes, public: bytes, message: bytes) -> int:
    return int.from_bytes(hashlib.sha512(r + public + message).digest(), "little") % L


def mixed_order_signature(seed: bytes, message: bytes, *, h_multiple_of_8: bool
                          ) -> tuple[bytes, bytes]:
    """(public key, signature) for the key a*B + T8, T8 of order 8: a key with a torsion
    component. libsodium's cofactorless check accepts the signature exactly when the
    challenge h is a multiple of 8; a cofactored check accepts it always. The nonce is
    ground until h has the asked-for residue."""
    a = secret_scalar(seed)
    public = ed_encode(ed_add(ed_mul(a, BASE), ORDER8))
    for counter in range(1000):
        r = int.from_bytes(hashlib.sha512(seed + counter.to_bytes(4, "big") + message)
                           .digest(), "little") % L
        r_bytes = ed_encode(ed_mul(r, BASE))
        h = challenge(r_bytes, public, message)
        if (h % 8 == 0) == h_multiple_of_8:
            return public, r_bytes + ((r + h * a) % L).to_bytes(32, "little")
    raise AssertionError("no nonce found")


def identity_r_signature(seed: bytes, message: bytes) -> tuple[bytes, bytes]:
    """(public key, signature) with R the identity and S = h*a: [S]B - [h]A is the
    identity, so the equation holds; libsodium refuses a small-order R all the same."""
    a = secret_scalar(seed)
    public = ed_encode(ed_mul(a, BASE))
    h = challenge(IDENTITY_ENCODING, public, message)
    return public, IDENTITY_ENCODING + (h * a % L).to_bytes(32, "little")


def note_signed_with(body: str, name: str, public: bytes, signature: bytes) -> str:
    """A one-signature note with any bytes as the signature."""
    return Note(body, (NoteSignature(name, key_id(name, public), signature),)).format()


@dataclass(frozen=True)
class Forged:
    receipt: str
    trust: str
    public: bytes
    message: bytes
    signature: bytes


def forged_checkpoint(name: str, public: bytes, signature_for: Any) -> Forged:
    """A receipt for a deposit of DOCUMENT in a made-up log, its checkpoint signed by
    `public` (the only key of the trust file) with `signature_for(body bytes)`."""
    entries = [*fillers(2, start=3000), entry_of(deposit(nonce=77))]
    _, root = tree(entries)
    body = Checkpoint(ORIGIN, len(entries), root).body()
    signature = signature_for(body.encode())
    receipt = receipt_with_note(entries, 2, note_signed_with(body, name, public, signature))
    trust = trust_for([Verifier.of(name, public)], quorum=1)
    return Forged(receipt, trust, public, body.encode(), signature)


SMALL_ORDER_FORGERY = forged_checkpoint(
    "forger/node0", IDENTITY_ENCODING, lambda _: IDENTITY_ENCODING + ZERO_S)


def small_order_sender_receipt() -> str:
    """A genuinely quorum-signed log whose entry's transaction claims the identity point
    as its sender, with the signature (identity, 0) that verifies every message under it."""
    body = TxBody(CHAIN_ID, IDENTITY_ENCODING, bytes(8), GENESIS_TIME_MS + 3_600_000,
                  "evidence", "deposit", {"digest": DIGEST, "meta": META})
    body_bytes = body.encode()
    tx = SignedTx(body_bytes, IDENTITY_ENCODING + ZERO_S, body, sha256(body_bytes))
    entries = [*fillers(3, start=4000), entry_of(tx)]
    return receipt_for(entries, 3, VALIDATORS[:3])


# --- helpers ------------------------------------------------------------------------------


def python_verdict(receipt: str | bytes, trust: str | bytes,
                   document: bytes | None) -> dict[str, Any]:
    """What `tide verify` (verify_deposit_receipt, then the block time as text, which
    refuses a time no four-digit year can show) says, in the JS verifier's shape."""
    try:
        proven = verify_deposit_receipt(receipt, trust,
                                        None if document is None else sha256(document))
        shown = proven.to_json()
    except Rejected as exc:
        return {"ok": False, "code": exc.code, "reason": exc.reason}
    return {"ok": True, "proven": shown}


SHARED_FIELDS = ("digest", "meta", "depositor", "method", "amends", "height", "time_ms",
                 "time", "log_index", "tx_id", "chain_id", "origin", "checkpoint_size",
                 "signers", "cosigned")


def as_text(value: Any) -> Any:
    """Integers as decimal text: JSON carries those beyond 2**53 as text from JS."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        return [as_text(v) for v in value]
    if isinstance(value, dict):
        return {k: as_text(v) for k, v in value.items()}
    return value


def assert_agree(python: dict[str, Any], js: dict[str, Any], case: str = "") -> None:
    assert js["ok"] == python["ok"], (case, python, js)
    if python["ok"]:
        assert as_text({k: js["proven"][k] for k in SHARED_FIELDS}) == as_text({
            k: python["proven"][k] for k in SHARED_FIELDS}), case
    else:
        assert js["code"] == python["code"], (case, python["reason"], js["reason"])


def flip(text: str, at: int, mask: int = 0x01) -> bytes:
    data = bytearray(text.encode())
    data[at] ^= mask
    return bytes(data)


def line_start(text: str, prefix: str) -> int:
    return next(m.start() for m in re.finditer(f"(?m)^{re.escape(prefix)}", text))


# --- verified ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node_receipt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path]]:
    """A deposit made by `tide deposit` on a real node: (document, receipt, trust file)."""
    root = tmp_path_factory.mktemp("js-node")
    with running_node(root, "js-verify-net") as node:
        document = root / "tally report.pdf"
        document.write_bytes(DOCUMENT + "水 tally ü\n".encode())
        result = tide("deposit", str(document), "--meta", "vessel=MSC Aurora", "--json",
                      env={"TIDE_NET": str(node.net)}, cwd=root)
        assert result.returncode == 0, result.stderr
        yield document, Path(f"{document}.tlog-proof"), node.net / "trust.txt"


@pytest.mark.parametrize("webcrypto", ENGINES)
def test_a_real_nodes_receipt_is_verified(js: Js, node_receipt: tuple[Path, Path, Path],
                                          webcrypto: bool) -> None:
    document, receipt, trust = node_receipt
    answer = js.verify(receipt.read_bytes(), trust.read_bytes(), document.read_bytes(),
                       webcrypto=webcrypto)
    assert answer["ok"], answer
    engine = "webcrypto" if webcrypto else "noble"
    assert answer["backends"] == {"sha256": engine, "ed25519": engine}
    proven = answer["proven"]
    assert proven["digest"] == sha256(document.read_bytes()).hex()
    assert proven["meta"] == {"vessel": "MSC Aurora"}
    assert proven["call"] == "evidence.deposit"
    assert proven["origin"].startswith("tidechain/js-verify-net/")
    assert proven["quorum"] == 1 and proven["signers"] == ["js-verify-net/node0"]
    assert_agree(python_verdict(receipt.read_bytes(), trust.read_bytes(),
                                document.read_bytes()), answer)


@pytest.mark.parametrize("webcrypto", ENGINES)
def test_an_in_process_receipt_is_verified_with_what_it_proves(js: Js, webcrypto: bool) -> None:
    answer = js.verify(RECEIPT, TRUST, DOCUMENT, webcrypto=webcrypto)
    assert answer["ok"], answer
    proven = answer["proven"]
    assert proven == {
        **{k: python_verdict(RECEIPT, TRUST, DOCUMENT)["proven"][k] for k in SHARED_FIELDS},
        "contract": "evidence", "call": "evidence.deposit", "quorum": 3, "validators": 4,
    }
    assert proven["log_index"] == 6 and proven["checkpoint_size"] == 11
    assert proven["signers"] == [f"{NETWORK}/node{i}" for i in range(3)]
    assert proven["depositor"] == DEPOSITOR.public_key.hex()
    assert proven["time"] == "2026-01-01T00:01:01.000Z"


def test_the_inlined_bundle_verifies_like_the_modules(js: Js) -> None:
    for webcrypto in (True, False):
        good = js.verify(RECEIPT, TRUST, DOCUMENT, webcrypto=webcrypto, bundle=True)
        assert good["ok"] and good["backends"]["ed25519"] == (
            "webcrypto" if webcrypto else "noble")
        forged = SMALL_ORDER_FORGERY
        bad = js.verify(forged.receipt, forged.trust, DOCUMENT, webcrypto=webcrypto,
                        bundle=True)
        assert not bad["ok"] and "small-order" in bad["reason"]


# --- rejected, with the step named ------------------------------------------------------


def changed_entry() -> bytes:
    # One byte inside the base64 of the entry (the extra line), still canonical base64.
    at = line_start(RECEIPT, "extra ") + len("extra ") + 40
    return flip(RECEIPT, at, 0x01)


def changed_proof_hash() -> bytes:
    lines = RECEIPT.split("\n")
    first_hash = lines[3]  # header, extra, index, then the audit path
    raw = bytearray(base64.b64decode(first_hash))
    raw[5] ^= 0x80
    lines[3] = base64.b64encode(bytes(raw)).decode()
    return "\n".join(lines).encode()


def changed_signature() -> bytes:
    at = RECEIPT.index("\u2014 ")
    line_end = RECEIPT.index("\n", at)
    name_end = RECEIPT.index(" ", at + 2)
    encoded = RECEIPT[name_end + 1:line_end]
    raw = bytearray(base64.b64decode(encoded))
    raw[10] ^= 0x04  # inside the signature, after the 4-byte key id
    return (RECEIPT[:name_end + 1] + base64.b64encode(bytes(raw)).decode()
            + RECEIPT[line_end:]).encode()


OTHER_KEYS_TRUST = trust_for(validators(4, tag="-other"))

REJECTIONS = {
    "changed entry": (changed_entry(), TRUST, DOCUMENT,
                      "receipt does not verify against the trust file: inclusion proof"),
    "changed proof hash": (changed_proof_hash(), TRUST, DOCUMENT,
                           "receipt does not verify against the trust file: inclusion proof"),
    "changed signature": (changed_signature(), TRUST, DOCUMENT,
                          "receipt does not verify against the trust file: signature by"),
    "trust file with other keys": (RECEIPT, OTHER_KEYS_TRUST, DOCUMENT,
                                   "note has no signature from a known key"),
    "small-order key in the trust file": (
        SMALL_ORDER_FORGERY.receipt, SMALL_ORDER_FORGERY.trust, DOCUMENT,
        "signature by \"forger/node0\" does not verify (the public key is a small-order point"),
    "small-order sender": (
        small_order_sender_receipt(), TRUST, DOCUMENT,
        "the transaction in the receipt is not validly signed by its sender: the public key "
        "is a small-order point"),
    "document that does not match": (
        RECEIPT, TRUST, DOCUMENT + b"!", "document does not match: the document's SHA-256 is"),
    "a failed deposit": (
        receipt_for([*fillers(2), entry_of(deposit(nonce=5), ok=False)], 2, VALIDATORS[:3]),
        TRUST, DOCUMENT, "the receipt is not for an evidence deposit: the deposit was refused"),
    "another chain's entry": (
        receipt_for([*fillers(2), entry_of(deposit_tx(
            DEPOSITOR, sha256(b"another chain"), DIGEST, META, now_ms=GENESIS_TIME_MS,
            nonce=bytes(8)))], 2, VALIDATORS[:3]),
        TRUST, DOCUMENT, "the receipt is not for an evidence deposit: the transaction belongs"),
    "below the quorum": (receipt_for(ENTRIES, 6, VALIDATORS[:2]), TRUST, DOCUMENT,
                         "checkpoint signed by 2 trusted validators, quorum is 3"),
    "a proof set given as a receipt": (format_proof_set([RECEIPT], None), TRUST, DOCUMENT,
                                       "a co-signed deposit's proof set, not a single receipt"),
}


@pytest.mark.parametrize("webcrypto", ENGINES)
@pytest.mark.parametrize("case", list(REJECTIONS))
def test_rejected_with_the_failed_step_named(js: Js, case: str, webcrypto: bool) -> None:
    receipt, trust, document, reason = REJECTIONS[case]
    answer = js.verify(receipt, trust, document, webcrypto=webcrypto)
    assert not answer["ok"]
    assert reason in answer["reason"], answer["reason"]
    assert_agree(python_verdict(receipt, trust, document), answer)


def test_tide_verify_agrees_on_the_forgery_and_the_real_receipt(
        js: Js, tmp_path: Path) -> None:
    """The command a court would run, as a subprocess, on the same files."""
    document = tmp_path / "tally.txt"
    document.write_bytes(DOCUMENT)
    for name, receipt, trust in (("real", RECEIPT, TRUST),
                                 ("forged", SMALL_ORDER_FORGERY.receipt,
                                  SMALL_ORDER_FORGERY.trust)):
        (tmp_path / f"{name}.tlog-proof").write_text(receipt)
        (tmp_path / f"{name}.txt").write_text(trust)
        result = tide("verify", str(document), str(tmp_path / f"{name}.tlog-proof"),
                      "--trust", str(tmp_path / f"{name}.txt"))
        assert (result.returncode == 0) == js.verify(receipt, trust, DOCUMENT)["ok"], result
        assert result.returncode == (0 if name == "real" else 1), result.stderr


# --- Ed25519 at the edges ---------------------------------------------------------------


def test_the_small_order_forgery_would_pass_without_the_check(js: Js) -> None:
    """WebCrypto and noble's default verify() both accept the forged checkpoint
    signature: only the small-order check refuses the forged receipt."""
    forged = SMALL_ORDER_FORGERY
    raw = js.call("raw", pub=forged.public.hex(), msg=forged.message.hex(),
                  sig=forged.signature.hex())
    assert raw["webcrypto"] is True and raw["noble"] is True, raw
    for webcrypto in (True, False):
        answer = js.verify(forged.receipt, forged.trust, DOCUMENT, webcrypto=webcrypto)
        assert not answer["ok"] and "small-order point" in answer["reason"]
    assert not python_verdict(forged.receipt, forged.trust, DOCUMENT)["ok"]


def test_every_small_order_point_is_blocked(js: Js) -> None:
    answer = js.call("smallOrder")
    assert answer == {"distinct": 8, "all_small": True, "blocked": True, "base_allowed": True}


@pytest.mark.parametrize("webcrypto", ENGINES)
def test_non_canonical_keys_and_signatures_are_refused(js: Js, webcrypto: bool) -> None:
    signer = VALIDATORS[0].key
    message = b"checkpoint text\n"
    signature = signer.sign(message)
    public = signer.public_key

    def problem(pub: bytes, sig: bytes) -> str | None:
        answer = js.call("ed25519", pub=pub.hex(), msg=message.hex(), sig=sig.hex(),
                         webcrypto=webcrypto)
        result: str | None = answer["problem"]
        return result

    assert problem(public, signature) is None
    s = int.from_bytes(signature[32:], "little")
    malleable = signature[:32] + (s + L).to_bytes(32, "little")  # same equation, S >= L
    assert problem(public, malleable) == "the signature is not canonical (S >= L)"
    y_is_p_plus_2 = (P + 2).to_bytes(32, "little")  # y = 2 spelled as p + 2
    assert problem(y_is_p_plus_2, signature) == (
        "the public key is not canonically encoded (y >= p)")
    for blocked in (IDENTITY_ENCODING, bytes(32), ed_encode(ORDER8),
                    ed_encode(ed_mul(4, ORDER8))):
        assert "small-order point" in (problem(blocked, signature) or "")
    from tidechain.core.crypto import is_valid_signature
    assert not is_valid_signature(public, message, malleable)
    assert not is_valid_signature(y_is_p_plus_2, message, signature)


@pytest.mark.parametrize("h_multiple_of_8", [True, False])
def test_a_key_with_a_torsion_component_is_judged_as_libsodium_judges_it(
        js: Js, h_multiple_of_8: bool) -> None:
    """A cofactored check (noble's verify) accepts more than libsodium's cofactorless
    one for such a key; the verifier must accept exactly what `tide verify` accepts."""
    seed = b"mixed order key"
    holder: dict[str, bytes] = {}

    def sign(body: bytes) -> bytes:
        public, signature = mixed_order_signature(seed, body, h_multiple_of_8=h_multiple_of_8)
        holder["public"] = public
        return signature

    public, _ = mixed_order_signature(seed, b"", h_multiple_of_8=True)
    forged = forged_checkpoint("mixed/node0", public, sign)
    assert holder["public"] == public
    python = python_verdict(forged.receipt, forged.trust, DOCUMENT)
    assert python["ok"] is h_multiple_of_8  # libsodium's verdict
    raw = js.call("raw", pub=public.hex(), msg=forged.message.hex(), sig=forged.signature.hex())
    assert raw["noble"] is True  # cofactored: always
    assert raw["webcrypto"] is h_multiple_of_8  # cofactorless, like libsodium
    for webcrypto in (True, False):
        assert_agree(python, js.verify(forged.receipt, forged.trust, DOCUMENT,
                                       webcrypto=webcrypto))


def test_a_small_order_r_is_refused_even_when_the_equation_holds(js: Js) -> None:
    seed = b"identity R"
    holder: dict[str, bytes] = {}

    def sign(body: bytes) -> bytes:
        public, signature = identity_r_signature(seed, body)
        holder["public"] = public
        return signature

    public = ed_encode(ed_mul(secret_scalar(seed), BASE))
    forged = forged_checkpoint("idr/node0", public, sign)
    raw = js.call("raw", pub=public.hex(), msg=forged.message.hex(), sig=forged.signature.hex())
    assert raw["webcrypto"] is True  # OpenSSL's equation holds
    python = python_verdict(forged.receipt, forged.trust, DOCUMENT)
    assert not python["ok"]
    for webcrypto in (True, False):
        answer = js.verify(forged.receipt, forged.trust, DOCUMENT, webcrypto=webcrypto)
        assert_agree(python, answer)
        assert "the signature's R is a small-order point" in answer["reason"]


# --- encoding vectors and the CBOR decoder ------------------------------------------------


def tagged(value: Any) -> Any:
    """A CBOR value as the runner's tagged JSON (bool before int: True is not 1 here)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {"i": str(value)}
    if isinstance(value, bytes):
        return {"b": value.hex()}
    if isinstance(value, str):
        return {"s": value}
    if isinstance(value, list):
        return {"a": [tagged(v) for v in value]}
    assert isinstance(value, dict)
    return {"m": [[tagged(k), tagged(v)] for k, v in value.items()]}


def python_cbor(data: bytes) -> dict[str, Any]:
    try:
        return {"ok": True, "value": tagged(cbor.decode(data))}
    except Rejected as exc:
        return {"ok": False, "code": exc.code}


@pytest.mark.parametrize("vector", VECTORS["cbor"], ids=lambda v: v["name"])
def test_every_valid_cbor_vector_decodes_to_its_value(js: Js, vector: dict[str, Any]) -> None:
    answer = js.call("cbor", hex=vector["hex"])
    assert answer == python_cbor(bytes.fromhex(vector["hex"]))
    assert answer["ok"]


@pytest.mark.parametrize("vector", VECTORS["non_canonical"], ids=lambda v: v["why"])
def test_every_non_canonical_vector_is_refused(js: Js, vector: dict[str, Any]) -> None:
    answer = js.call("cbor", hex=vector["hex"])
    assert not answer["ok"], vector["why"]
    assert answer["code"] == python_cbor(bytes.fromhex(vector["hex"]))["code"]


@pytest.mark.parametrize("name", ["genesis", "block_header"])
def test_structure_vectors_decode_as_in_python(js: Js, name: str) -> None:
    data = bytes.fromhex(VECTORS[name]["bytes"])
    assert js.call("cbor", hex=data.hex()) == python_cbor(data)


@pytest.mark.parametrize("name", ["log_entry", "failed_log_entry"])
def test_log_entry_vectors(js: Js, name: str) -> None:
    vector, tx = VECTORS[name], VECTORS["transaction"]
    answer = js.call("entry", hex=vector["bytes"])
    assert answer == {
        "height": str(vector["height"]), "time": str(vector["time_ms"]),
        "tx_id": tx["tx_id"], "body": tx["body_bytes"], "sig": tx["signature"],
        "sender": tx["sender"], "chain": tx["chain_id"], "call": "evidence.deposit",
        "ok": vector["result"]["ok"],
        "events": [e["type"] for e in vector["result"].get("events", [])],
        "problem": None,
    }
    assert tx["signed_message"] == TX_SIGNING_DOMAIN.hex() + tx["body_bytes"]
    for data in (tx["body_bytes"], tx["envelope"]):
        assert js.call("cbor", hex=data) == python_cbor(bytes.fromhex(data))


CBOR_SAMPLES = [bytes.fromhex(v["hex"]) for v in VECTORS["cbor"]] + [
    bytes.fromhex(VECTORS[n]["bytes"]) for n in ("log_entry", "genesis", "block_header")]


@st.composite
def cbor_inputs(draw: st.DrawFn) -> bytes:
    """Mutations of valid encodings (most stay near the format) and random bytes."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=40))
    data = bytearray(draw(st.sampled_from(CBOR_SAMPLES)))
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(["flip", "delete", "insert", "set"]))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "delete":
            del data[at]
        elif kind == "insert":
            data.insert(at, draw(st.integers(0, 255)))
        else:
            data[at] = draw(st.sampled_from([0x18, 0x19, 0x1F, 0x5F, 0x9F, 0xBF, 0xF7, 0xF9,
                                             0xC0, 0xA1, 0x60, 0x40, 0x80, 0xFF]))
    return bytes(data)


def test_the_cbor_decoder_agrees_with_pythons(js: Js) -> None:
    counts: Counter[str] = Counter()

    @settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
    @given(data=cbor_inputs())
    def check(data: bytes) -> None:
        python = python_cbor(data)
        answer = js.call("cbor", hex=data.hex())
        answer.pop("reason", None)
        assert answer == python, data.hex()
        counts["accepted" if python["ok"] else "refused"] += 1

    check()
    print(f"CBOR decoder agreement: {dict(counts)}")
    assert counts["accepted"] >= 20 and counts["refused"] >= 100, counts


# --- agreement with `tide verify` over receipts and their mutations -----------------------


def rotated_trust_and_receipts() -> tuple[str, str, str]:
    """Validator node1's key rotated at size 8 (ADR 0011): a receipt before it and one
    after it, against one trust file with size ranges."""
    new_node1 = Signer(f"{NETWORK}/node1", SigningKey(sha256(b"js-v1 rotated")))
    keys = [s.verifier() for s in VALIDATORS] + [new_node1.verifier()]
    ranges = (SizeRange(0, None), SizeRange(0, 7), SizeRange(0, None), SizeRange(0, None),
              SizeRange(8, None))
    trust = format_trust(Trust.of(keys, origin=ORIGIN, ranges=ranges), "rotated node1")
    before = receipt_for(ENTRIES[:7], 6, VALIDATORS[:3])
    after = receipt_for(ENTRIES, 6, [VALIDATORS[0], new_node1, VALIDATORS[2]])
    return trust, before, after


ROTATED_TRUST, BEFORE_ROTATION, AFTER_ROTATION = rotated_trust_and_receipts()
AMENDED = deposit(sha256(b"v2"), nonce=9)
AMENDMENT = call_tx(DEPOSITOR, CHAIN_ID, "evidence", "amend",
                    amend_args(6, DIGEST, {"note": "水 rev 2"}), now_ms=GENESIS_TIME_MS,
                    nonce=(10).to_bytes(8, "big"))
NOT_EVIDENCE = call_tx(DEPOSITOR, CHAIN_ID, "members", "enrol", {"cert": b"\x30\x00"},
                       now_ms=GENESIS_TIME_MS, nonce=(11).to_bytes(8, "big"))
ONE = validators(1, tag="-one")

BASES: list[tuple[str, str, str, bytes | None]] = [
    ("four validators", RECEIPT, TRUST, DOCUMENT),
    ("four validators, no document", RECEIPT, TRUST, None),
    ("with a witness's signature", receipt_for(ENTRIES, 6, VALIDATORS, witness=True), TRUST,
     DOCUMENT),
    ("one validator, quorum 1", receipt_for(ENTRIES, 3, ONE), trust_for(ONE, origin=None),
     None),
    ("rotated key, before", BEFORE_ROTATION, ROTATED_TRUST, DOCUMENT),
    ("rotated key, after", AFTER_ROTATION, ROTATED_TRUST, DOCUMENT),
    ("an amendment", receipt_for([*ENTRIES, entry_of(AMENDMENT)], 11, VALIDATORS[1:]), TRUST,
     DOCUMENT),
    ("a co-signed deposit", receipt_for([*fillers(1), entry_of(AMENDED, events=(
        Event("deposited", {"digest": sha256(b"v2"), "slots": [], "threshold": 1}),))],
        1, VALIDATORS[:3]), TRUST, None),
    ("not a deposit", receipt_for([*fillers(3), entry_of(NOT_EVIDENCE)], 3, VALIDATORS[:3]),
     TRUST, None),
    ("small-order forgery", SMALL_ORDER_FORGERY.receipt, SMALL_ORDER_FORGERY.trust, DOCUMENT),
]


def mutate(data: bytes, draw: st.DrawFn) -> bytes:
    out = bytearray(data)
    at = draw(st.integers(0, max(len(out) - 1, 0)))
    kind = draw(st.sampled_from(["flip", "flip", "delete", "insert", "truncate"]))
    if not out:
        return bytes([draw(st.integers(0, 255))])
    if kind == "flip":
        out[at] ^= draw(st.sampled_from([0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xFF]))
    elif kind == "delete":
        del out[at]
    elif kind == "insert":
        out.insert(at, draw(st.sampled_from([0x0A, 0x20, 0x2B, 0x3D, 0x41, 0x0D, 0xC3])))
    else:
        del out[at:]
    return bytes(out)


WHITESPACE = [" ", "\t", "\x1c", "\x1f", "\x85", "\xa0", "\u3000", "\u2028", "\ufeff",
              "\u200b", "\x0b", "\r"]
"""Around trust file lines: Python strips the first ten, JavaScript's trim() strips a
different set (it keeps U+001C..U+001F and U+0085, strips U+FEFF); U+200B is no space."""


def rewrite_trust(trust: str, draw: st.DrawFn) -> str:
    """Edits that a person might make to a trust file, most of which keep its meaning."""
    lines = trust.split("\n")
    at = draw(st.integers(0, len(lines) - 1))
    kind = draw(st.sampled_from(["comment", "pad", "crlf", "swap"]))
    if kind == "comment":
        lines.insert(at, "#" + draw(st.text(max_size=20).filter(lambda t: "\n" not in t)))
    elif kind == "pad":
        pad = st.lists(st.sampled_from(WHITESPACE), max_size=3).map("".join)
        lines[at] = draw(pad) + lines[at] + draw(pad)
    elif kind == "crlf":
        lines = [line + "\r" if line else line for line in lines]
    else:
        other = draw(st.integers(0, len(lines) - 1))
        lines[at], lines[other] = lines[other], lines[at]
    return "\n".join(lines)


def rewrite_unknown_signature(receipt: str, draw: st.DrawFn) -> str:
    """Another signature by the witness nobody trusts: ignored, whatever its bytes."""
    prefix = f"\u2014 {WITNESS.name} "
    if prefix not in receipt:
        return receipt
    start = receipt.index(prefix) + len(prefix)
    end = receipt.index("\n", start)
    raw = WITNESS.key_id + draw(st.binary(min_size=1, max_size=80))
    return receipt[:start] + base64.b64encode(raw).decode() + receipt[end:]


@st.composite
def verification_cases(draw: st.DrawFn) -> tuple[str, bytes, bytes, bytes | None, bool]:
    name, receipt, trust, document = draw(st.sampled_from(BASES))
    target = draw(st.sampled_from(["none", "receipt", "receipt", "receipt", "trust",
                                   "document", "rewrite trust", "rewrite witness"]))
    if target == "rewrite trust":
        trust = rewrite_trust(trust, draw)
    elif target == "rewrite witness":
        receipt = rewrite_unknown_signature(receipt, draw)
    receipt_bytes, trust_bytes = receipt.encode(), trust.encode()
    if target == "receipt":
        receipt_bytes = mutate(receipt_bytes, draw)
    elif target == "trust":
        trust_bytes = mutate(trust_bytes, draw)
    elif target == "document" and document is not None:
        document = mutate(document, draw)
    return f"{name} / {target}", receipt_bytes, trust_bytes, document, draw(st.booleans())


def test_javascript_and_tide_verify_agree_on_every_mutation(js: Js) -> None:
    counts: Counter[str] = Counter()

    @settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
    @given(case=verification_cases())
    def check(case: tuple[str, bytes, bytes, bytes | None, bool]) -> None:
        name, receipt, trust, document, webcrypto = case
        python = python_verdict(receipt, trust, document)
        answer = js.verify(receipt, trust, document, webcrypto=webcrypto)
        assert_agree(python, answer, name)
        counts["accepted" if python["ok"] else "rejected"] += 1
        counts["webcrypto" if webcrypto else "noble"] += 1

    check()
    print(f"JS / Python agreement over receipts and mutations: {dict(counts)}")
    assert counts["accepted"] >= 150 and counts["rejected"] >= 500, counts
    assert counts["webcrypto"] >= 300 and counts["noble"] >= 300, counts


TARGET_ENTRY = entry_of(deposit(nonce=31), height=5)


@st.composite
def entries_under_a_valid_checkpoint(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A changed log entry that a quorum signed anyway (as a dishonest or buggy quorum
    could): only the entry's own checks (strict decoding, the sender's signature, the
    deposit rules) stand between it and VERIFIED."""
    data = bytearray(TARGET_ENTRY)
    for _ in range(draw(st.integers(0, 2))):
        # Half the changes fall after the transaction (time, height, result), which its
        # signature does not cover.
        start = data.find(b"dtime") if draw(st.booleans()) else 0
        at = draw(st.integers(max(start, 0), len(data) - 1))
        kind = draw(st.sampled_from(["flip", "flip", "flip", "delete", "insert", "set"]))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "delete":
            del data[at]
        elif kind == "insert":
            data.insert(at, draw(st.integers(0, 255)))
        else:
            data[at] = draw(st.sampled_from([0x00, 0x01, 0x17, 0x18, 0x20, 0x40, 0x60, 0xA0,
                                             0xF4, 0xF5, 0xF6, 0x1B, 0x3B]))
    return bytes(data), draw(st.booleans())


def test_javascript_and_tide_verify_agree_on_changed_entries_in_signed_logs(js: Js) -> None:
    counts: Counter[str] = Counter()

    @settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
    @given(case=entries_under_a_valid_checkpoint())
    def check(case: tuple[bytes, bool]) -> None:
        entry, webcrypto = case
        if not entry:
            return  # a receipt cannot carry an empty entry (its extra line is omitted)
        receipt = receipt_for([*fillers(2), entry], 2, VALIDATORS[:3])
        python = python_verdict(receipt, TRUST, None)
        assert_agree(python, js.verify(receipt, TRUST, None, webcrypto=webcrypto))
        counts["accepted" if python["ok"] else "rejected"] += 1
        counts[python.get("code", "ok")] += 1

    check()
    print(f"JS / Python agreement over changed entries: {dict(counts)}")
    assert counts["accepted"] >= 25 and counts["rejected"] >= 200, counts
    assert counts["bad_signature"] >= 10, counts  # the signature check itself was reached


# --- the JS mirrors the Python constants ------------------------------------------------


def test_the_js_bounds_are_the_python_bounds(js: Js) -> None:
    js_limits = js.call("limits")
    for name in ("MAX_RECEIPT_BYTES", "MAX_PROOF_HASHES", "MAX_TRUST_FILE_BYTES",
                 "MAX_VALIDATORS", "MAX_NOTE_SIGNATURES", "MAX_NOTE_BYTES", "MAX_NAME_BYTES",
                 "MAX_CBOR_DEPTH", "MAX_CBOR_ITEMS", "MAX_TX_BYTES", "MAX_META_ENTRIES",
                 "MAX_META_KEY_BYTES", "MAX_META_VALUE_BYTES"):
        assert js_limits[name] == str(getattr(limits, name)), name
    from tidechain.core.checkpoint import MAX_TREE_SIZE
    assert js_limits["MAX_TREE_SIZE"] == str(MAX_TREE_SIZE)


def test_the_trust_files_whitespace_is_pythons(js: Js) -> None:
    python = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
    assert js.call("pyspace")["chars"] == python


# --- the standalone page ----------------------------------------------------------------


def test_verify_html_is_deterministic_and_allows_only_its_own_content() -> None:
    html = build_verify_html()
    assert html == build_verify_html()
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
    assert csp is not None
    script = re.search(r'<script type="module">(.*?)</script>', html, re.S)
    style = re.search(r"<style>(.*?)</style>", html, re.S)
    assert script is not None and style is not None

    def source(text: str) -> str:
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        return f"'sha256-{digest}'"

    assert csp.group(1) == (f"default-src 'none'; script-src {source(script.group(1))}; "
                            f"style-src {source(style.group(1))}; base-uri 'none'; "
                            "form-action 'none'")
    assert html.index("Content-Security-Policy") < html.index("<style>")
    assert "src=" not in html and "href=" not in html  # nothing to load


def test_the_served_page_has_no_inline_script_or_style() -> None:
    """Served by a node under CSP default-src 'self': everything comes from files."""
    page = (VERIFY_DIR / "verify.html").read_text()
    assert re.findall(r"<script[^>]*>", page) == [
        '<script type="module" src="verify-page.js">']
    assert "<style" not in page and "style=" not in page
    assert re.search(r"\son[a-z]+\s*=", page) is None  # no inline event handlers
    for path in VERIFY_DIR.glob("*.js"):
        assert ".style." not in path.read_text() and "innerHTML" not in path.read_text(), path
    assert ENTRY_MODULE == "verify/verify-page.js"


def test_the_published_hash_is_the_built_files() -> None:
    """docs/verify-html.md publishes the page's SHA-256; regenerate it with
    `tide explorer verify-html` whenever a file under static/verify or vendor changes."""
    built = verify_html_sha256(build_verify_html())
    for doc in (DOC, DOC.parent / "explorer.md"):  # both publish it
        assert built in re.findall(r"\b[0-9a-f]{64}\b", doc.read_text()), doc


def test_tide_explorer_verify_html_writes_the_page_and_prints_its_hash(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tidechain.cli import explorer
    from tidechain.cli import main as cli_main

    extra = () if explorer.register in cli_main.AREAS else (explorer.register,)
    out = tmp_path / "page.html"
    assert cli_main.main(["explorer", "verify-html", "-o", str(out), "--json"],
                         extra=extra) == 0
    printed = json.loads(capsys.readouterr().out)
    assert out.read_text() == build_verify_html()
    assert printed == {"path": str(out), "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
                       "bytes": out.stat().st_size}


def test_the_vendored_files_are_the_pinned_ones() -> None:
    """vendor/README.md names each file's package, version and SHA-256."""
    readme = (VENDOR_DIR / "README.md").read_text()
    files = sorted(p for p in VENDOR_DIR.rglob("*") if p.is_file() and p.name != "README.md")
    assert files
    for path in files:
        relative = path.relative_to(VENDOR_DIR).as_posix()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert f"| `{relative}` | `{digest}` |" in readme, relative


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    need("Debian's chromium (/usr/bin/chromium)", CHROMIUM.exists())
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("Python Playwright", False)
        raise
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"])
        yield launched
        launched.close()


@pytest.mark.parametrize("engine", ["webcrypto", "js"])
def test_the_standalone_page_verifies_offline_in_chromium(browser: Any, tmp_path: Path,
                                                          engine: str) -> None:
    """Opens the standalone verify.html from file:// with every network request refused,
    gives it files through its inputs and reads the verdict: VERIFIED for a real
    receipt, REJECTED for a changed one and for a small-order key in the trust file; with
    the browser's WebCrypto, then with the page's own JavaScript (`?engine=js`).
    Screenshots (`ENGINE-verified.png`, `ENGINE-changed.png`, `ENGINE-small-order.png`)
    go to the directory $TIDE_TEST_ARTIFACTS names when it is set, else to the test's
    tmp_path."""
    artifacts = Path(os.environ.get("TIDE_TEST_ARTIFACTS") or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    page_path = tmp_path / "verify.html"
    page_path.write_text(build_verify_html())
    files = {"receipt.tlog-proof": RECEIPT.encode(), "trust.txt": TRUST.encode(),
             "document.txt": DOCUMENT, "changed.tlog-proof": changed_entry(),
             "forged.tlog-proof": SMALL_ORDER_FORGERY.receipt.encode(),
             "forged-trust.txt": SMALL_ORDER_FORGERY.trust.encode()}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)

    context = browser.new_context()
    requests: list[str] = []

    def refuse(route: Any) -> None:
        requests.append(route.request.url)
        route.abort()

    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
        "file://") else refuse(route))
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)
    page.goto(page_path.as_uri() + ("?engine=js" if engine == "js" else ""))

    def verdict(receipt: str, trust: str, document: str, shot: str) -> tuple[str, str]:
        page.set_input_files("#receipt-file", str(tmp_path / receipt))
        page.set_input_files("#trust-file", str(tmp_path / trust))
        page.set_input_files("#document-file", str(tmp_path / document))
        page.wait_for_selector(f'#verdict[data-inputs="{receipt}|{trust}|{document}"]',
                               timeout=30_000)
        page.screenshot(path=str(artifacts / f"{engine}-{shot}"), full_page=True)
        return page.inner_text("#verdict-word"), page.inner_text("#verdict")

    word, text = verdict("receipt.tlog-proof", "trust.txt", "document.txt", "verified.png")
    assert word == "VERIFIED", text
    assert DIGEST.hex() in text and "evidence.deposit" in text
    assert f"{NETWORK}/node0, {NETWORK}/node1, {NETWORK}/node2" in text
    used = page.inner_text("#engine")
    if engine == "js":
        assert used == "SHA-256 by pure JavaScript (noble), Ed25519 by pure JavaScript (noble)"

    word, text = verdict("changed.tlog-proof", "trust.txt", "document.txt", "changed.png")
    assert word == "REJECTED" and "inclusion proof" in text, text
    # Nothing the earlier receipt proved may stay on screen under a REJECTED verdict.
    assert not page.is_visible("#proven") and DIGEST.hex() not in text, text

    word, text = verdict("forged.tlog-proof", "forged-trust.txt", "document.txt",
                         "small-order.png")
    assert word == "REJECTED" and "small-order point" in text, text
    assert not page.is_visible("#proven") and "Depositor" not in text, text

    # Every other rejection `tide verify` makes, in the browser too (each named by the
    # step that failed): a changed proof hash or signature, another trust file, another
    # document, and the rest of REJECTIONS.
    for n, (case, (receipt, trust, document, reason)) in enumerate(REJECTIONS.items()):
        names = (f"case{n}.tlog-proof", f"case{n}-trust.txt", f"case{n}-doc.bin")
        for name, data in zip(names, (receipt, trust, document), strict=True):
            (tmp_path / name).write_bytes(data.encode() if isinstance(data, str) else data)
        word, text = verdict(*names, f"rejected-{n}.png")
        assert word == "REJECTED" and reason in text, (case, text)
        assert not page.is_visible("#proven"), case

    assert errors == [] and requests == [], (errors, requests)
    print(f"chromium, {engine}: {used}; screenshots in {artifacts}")
    context.close()


class _StaticHandler(SimpleHTTPRequestHandler):
    """static/ over HTTP with the CSP a node sends (explorer/routes.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(STATIC_DIR), **kwargs)

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", "default-src 'self'")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_served_page_works_under_the_nodes_csp(browser: Any, tmp_path: Path) -> None:
    """verify.html as a node serves it, its modules fetched one by one from the same
    origin (loopback) under `default-src 'self'`: no CSP violation, and a verdict."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StaticHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        (tmp_path / "receipt.tlog-proof").write_text(RECEIPT)
        (tmp_path / "trust.txt").write_text(TRUST)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: errors.append(message.text) if message.type ==
                "error" and "/favicon.ico" not in message.location.get("url", "") else None)
        page.goto(f"http://127.0.0.1:{server.server_port}/verify/verify.html")
        page.set_input_files("#receipt-file", str(tmp_path / "receipt.tlog-proof"))
        page.set_input_files("#trust-file", str(tmp_path / "trust.txt"))
        page.wait_for_selector('#verdict[data-inputs="receipt.tlog-proof|trust.txt|"]',
                               timeout=30_000)
        assert page.inner_text("#verdict-word") == "VERIFIED"
        assert errors == [], errors
        page.close()
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
