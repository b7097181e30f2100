"""Issue 11, acceptance 1: every query of every application, and every other GET route,
x every role x {no credential, a wrong signature, an expired signature, a replayed
signature, a valid signature}, against one real node: only the declared readers get
data, and every refusal is a 401, 403 or 404 with a reason (ADR 0015).

The network (`world`): the `tide init` organisation `acme` with, enrolled through real
transactions by its admin, one member per `Role` holding exactly that role, a second
enterprise (`supplier`), and one more member (a depositor) revoked on chain afterwards.
On chain through real transactions: three deposits (two by the depositor, one by the
member later revoked), an amendment, a refused amendment (committed, 422), a governance
proposal, the tax authority's audit keys and an authorised issuer, an invoice sealed to
its issuer, its buyer (the enterprise member) and the auditors, and the revocation; and
supply-chain finance (`_put_scf`): the funder's credit line for the enterprise member (the
core enterprise), backed by a second invoice, certificates it issued to the supplier in
every state (pending, accepted and split, the part sent back to the core enterprise,
financed by the funder, frozen awaiting it and overdue, lapsed unaccepted, settled), and
a refused scf call (422).

The oracle (`expected`) is computed from the declarations only: each route's `access`
and `roles`, each query's `public`, `roles` and `audience`, each application's
`readers` and `entry_audience` (`default_registry()`), and the facts of the chain. The
server's answers are used only as the reference content: what the regulator, who reads
everything, gets for each sample (a reader with every right must get exactly that; a
reader of a filtered list exactly its items the audience admits).

Why the cross product is enumerated rather than drawn: it is small (39 GET routes x 10
callers x 5 credentials), each combination is one or two real HTTP requests, and an
enumeration cannot miss one. `test_every_route_role_and_credential` runs every sample
(every log entry for the entry routes, existing, hidden and missing records for the
queries) with a valid signature for every member in good standing, and the
sample-independent credentials (none, wrong, expired, replayed, and every credential of
the revoked member) on a sample rotating over the table; it asserts that every
(route, caller, credential) was exercised and that non-public routes answered both data
and refusals, so it cannot hold vacuously. It also checks that, per route and caller,
every refusal of one status reads the same once the identifier asked for is blanked
out (a hidden record is refused exactly as a missing one). Hypothesis
(`test_any_route_role_credential_and_record`, derandomized, bounded) then draws
(route, record, caller, credential, wrong-signature variant) combinations on top,
so the records paired with the sample-independent credentials vary too.

The node's read limit (200 reads/s per caller, burst 400; a failed credential is
counted against the address) is kept out of the way by pacing every request of this
module through client-side buckets a little below the node's (`Pacer`); a 429 fails
the test as a pacing bug. Mutual TLS is covered by tests/test_api_tls.py.

Implementation bugs this test found are listed in `KNOWN_BUGS`: the combinations that
exhibit them are required to still fail (so fixing one fails the test until its line
is removed), every other combination must pass.
"""

from __future__ import annotations

import base64
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import DAY_MS, key
from tests.nodes import RunningNode, running_node
from tidechain.api.access import ACCEPT_SIGNATURE
from tidechain.api.routes import Route, all_routes
from tidechain.client import Client
from tidechain.client import txbuilder as tb
from tidechain.client.auth import MemberSignatures
from tidechain.client.files import OrgDir, read_key
from tidechain.contracts import default_registry
from tidechain.contracts.evidence.contract import record_key
from tidechain.contracts.governance.contract import proposal_key
from tidechain.contracts.invoice.state import invoice_key
from tidechain.contracts.members.contract import member_key, parse_fingerprint
from tidechain.contracts.scf.state import cert_key
from tidechain.core.crypto import SigningKey, sha256
from tidechain.identity import Role, issue_member_cert
from tidechain.identity.httpsig import ALGORITHM, COVERED_COMPONENTS, LABEL, TAG, sign_standard
from tidechain.ledger.access import ANONYMOUS, Reader
from tidechain.ledger.runtime import namespaced
from tidechain.ledger.types import LogEntry, SignedTx

REGISTRY = default_registry()
GET_ROUTES: tuple[Route, ...] = tuple(r for r in all_routes(REGISTRY) if r.method == "GET")
ENTRY_ROUTES = frozenset({"get_tx", "wait_tx", "get_entry", "receipt"})
"""The routes that answer one log entry (ADR 0015: read by the regulator, the
application's readers, the sender and the entry's parties)."""

NONE, WRONG, EXPIRED, REPLAYED, VALID = "none", "wrong", "expired", "replayed", "valid"
CREDENTIALS = (NONE, WRONG, EXPIRED, REPLAYED, VALID)

ORG = "acme"  # `tide init`'s organisation
TAX_ID = "91350100M000100Y43"
UNKNOWN_TAX_ID = "91440300MA5F12342Q"
NUMBER = "04400000000000000001"
SCF_NUMBER = "04400000000000000002"
"""The invoice backing the certificates: the issuer's (the supplier side) to the
enterprise member (the core enterprise)."""
MISSING_NUMBER = "04400000000000000099"
MISSING_KEY = "00" * 32
MISSING_TX = "ab" * 32
REVOKED = "revoked"
SUPPLIER = "supplier"
"""A second enterprise: the core enterprise's supplier in the scf data."""
MISSING_ID = 999
SHORT_TERM_MS = 8_000
"""The maturity of the certificates that are overdue, lapsed or settled by the time the
samples are read: the setup waits for it, so no answer changes while the test runs."""
EXPIRED_BY_S = 600
"""An expired signature is made this long ago (its lifetime is the SDK's 60 s): far past
the node's 30 s of clock skew."""

KNOWN_BUGS: dict[tuple[str, str], str] = {}


# --- callers and credentials -----------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    name: str
    key: SigningKey
    roles: frozenset[Role]
    revoked: bool = False

    @property
    def hex(self) -> str:
        return self.key.public_key.hex()

    @property
    def reader(self) -> Reader:
        return Reader(self.key.public_key, self.roles)


CALLERS: tuple[Caller, ...] = (
    *(Caller(role.value, key(7100 + i), frozenset({role})) for i, role in enumerate(Role)),
    Caller(SUPPLIER, key(7197), frozenset({Role.ENTERPRISE})),
    Caller(REVOKED, key(7199), frozenset({Role.DEPOSITOR}), revoked=True),
)
BY_NAME = {c.name: c for c in CALLERS}
OTHER_KEY = key(7198)
"""Never enrolled: the key a wrong signature is made with."""


def _serial(caller: Caller) -> int:
    return 7_100_000 + CALLERS.index(caller)


class Pacer:
    """Client-side token buckets a little below the node's read limit (200/s, burst
    400 per caller): whatever this module sends, no bucket of the node runs dry."""

    RATE_PER_S = 190.0
    BURST = 300.0

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, bucket: str) -> None:
        now = time.monotonic()
        tokens, last = self._buckets.get(bucket, (self.BURST, now))
        tokens = min(self.BURST, tokens + (now - last) * self.RATE_PER_S)
        if tokens < 1.0:
            time.sleep((1.0 - tokens) / self.RATE_PER_S)
            now, tokens = time.monotonic(), 1.0
        self._buckets[bucket] = (tokens - 1.0, now)


def _signed(request: httpx.Request, auth: MemberSignatures) -> httpx.Request:
    """`request` with the SDK's signature headers, as httpx would send it."""
    return next(auth.sync_auth_flow(request))


def _wrong(request: httpx.Request, caller: Caller, variant: int) -> httpx.Request:
    """A signature that does not verify: made by another key than the keyid claims
    (variant 0), or the caller's own with one byte of the signature flipped (1)."""
    if variant == 0:
        now = int(time.time())
        request.headers.update(sign_standard(
            "GET", str(request.url), {}, OTHER_KEY.seed, covered=COVERED_COMPONENTS,
            params={"created": now, "expires": now + 60, "nonce": os.urandom(12).hex(),
                    "keyid": caller.hex, "alg": ALGORITHM, "tag": TAG}, label=LABEL))
        return request
    signed = _signed(request, MemberSignatures(caller.key))
    label, value = signed.headers["Signature"].split("=", 1)
    raw = bytearray(base64.b64decode(value.strip(":")))
    raw[7] ^= 0x01
    signed.headers["Signature"] = f"{label}=:{base64.b64encode(bytes(raw)).decode()}:"
    return signed


# --- the samples ---------------------------------------------------------------------------


@dataclass
class Sample:
    """One concrete call of a route, with what a reader with every right gets."""

    label: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    status: int = 200
    """What the regulator (who reads everything) gets."""
    ident: str | None = None
    """The identifier the call names, blanked out when refusals are compared."""
    entry: LogEntry | None = None
    """Entry routes: the entry named (None: a missing one)."""
    namespace: str | None = None
    """State proofs: the namespace of the key."""
    self_key: bool = False
    """`key` is the caller's own member key."""
    reference: httpx.Response | None = None
    """The regulator's answer (None for `self_key` samples)."""
    entries: tuple[LogEntry, ...] = ()
    """Proof sets: the entries proven."""


@dataclass
class World:
    node: RunningNode
    http: httpx.Client
    pacer: Pacer
    entries: dict[int, LogEntry] = field(default_factory=dict)
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    names: dict[bytes, str] = field(default_factory=dict)
    """Member key -> a name, for labels."""
    scf: dict[str, int] = field(default_factory=dict)
    """The scf setup's certificate ids by what they show."""

    def send(self, request: httpx.Request, bucket: str) -> httpx.Response:
        self.pacer.take(bucket)
        return self.http.send(request)

    def read(self, path: str, caller: Caller, params: dict[str, str] | None = None
             ) -> httpx.Response:
        """A read signed by `caller` (for the setup and the references)."""
        request = _signed(self.http.build_request("GET", path, params=params),
                          MemberSignatures(caller.key))
        return self.send(request, caller.hex)

    def calls(self, caller: Caller, cred: str, sample: Sample, variant: int = 0
              ) -> list[httpx.Response]:
        """The answers to `sample` sent by `caller` with credential `cred` (two for a
        replay: the same signed request sent twice)."""
        params = dict(sample.params)
        if sample.self_key:
            params["key"] = caller.hex
        request = self.http.build_request("GET", sample.path, params=params)
        # A request that proves no member in good standing is counted by address.
        bucket = "ip" if cred in (NONE, WRONG, EXPIRED) or caller.revoked else caller.hex
        if cred == NONE:
            return [self.send(request, bucket)]
        if cred == WRONG:
            return [self.send(_wrong(request, caller, variant), bucket)]
        if cred == EXPIRED:
            past = MemberSignatures(caller.key, clock_s=lambda: time.time() - EXPIRED_BY_S)
            return [self.send(_signed(request, past), bucket)]
        signed = _signed(request, MemberSignatures(caller.key))
        first = self.send(signed, bucket)
        if cred == VALID:
            return [first]
        again = httpx.Request("GET", signed.url, headers=signed.headers)
        return [first, self.send(again, bucket)]


# --- the network ----------------------------------------------------------------------------


def _commit(world: World, client: Client, txs: list[SignedTx], waiter: Caller | SigningKey
            ) -> list[dict[str, Any]]:
    """Submit `txs` in one batch and wait for each to commit (200 or 422)."""
    results = client.submit_batch(txs)
    assert all("tx_id" in r for r in results), results
    reader = waiter if isinstance(waiter, Caller) else Caller("setup", waiter, frozenset())
    outcomes = []
    for tx in txs:
        answer = world.read(f"/v1/tx/{tx.tx_id.hex()}/wait", reader, {"timeout_ms": "20000"})
        assert answer.status_code in (200, 422), answer.text
        outcomes.append(answer.json())
    return outcomes


@dataclass
class Chain:
    """What the setup put on chain."""

    deposits: dict[str, int]  # label -> log index
    digest: bytes
    proposal: int
    month: str = ""
    scf: dict[str, int] = field(default_factory=dict)
    """Certificate ids by what they show (`_put_scf`)."""


def _populate(world: World) -> Chain:
    net = world.node.net
    admin0 = read_key(net / "admin.key").key
    org = OrgDir(net / "orgs" / ORG)
    ca_der, ca_seed = org.cert(), org.key_seed()
    now_ms = int(time.time() * 1000)
    world.names[admin0.public_key] = "genesis admin"
    for c in CALLERS:
        world.names[c.key.public_key] = c.name
    role = {r: BY_NAME[r.value] for r in Role}
    regulator, depositor, tax = role[Role.REGULATOR], role[Role.DEPOSITOR], role[
        Role.TAX_AUTHORITY]
    issuer, buyer, admin = role[Role.INVOICE_ISSUER], role[Role.ENTERPRISE], role[Role.ADMIN]
    revoked = BY_NAME[REVOKED]

    with Client(world.node.url) as client:
        chain_id = client.chain_id()

        def call(signer: SigningKey, contract: str, method: str, args: dict[str, Any]
                 ) -> SignedTx:
            return tb.call_tx(signer, chain_id, contract, method, args,
                              now_ms=int(time.time() * 1000), nonce=os.urandom(16))

        certs = {c.name: issue_member_cert(
            ca_der, ca_seed, f"reader {c.name}", c.key.public_key, tuple(sorted(c.roles)),
            now_ms - 60_000, now_ms + DAY_MS, _serial(c)) for c in CALLERS}
        _commit(world, client, [call(admin0, tb.MEMBERS, "enrol", tb.enrol_args(certs[c.name]))
                                for c in CALLERS], admin0)

        digest = sha256(b"read-access 1")
        first, second, theirs, _, gov = _commit(world, client, [
            call(depositor.key, tb.EVIDENCE, "deposit", tb.deposit_args(digest, {"n": "1"})),
            call(depositor.key, tb.EVIDENCE, "deposit",
                 tb.deposit_args(sha256(b"read-access 2"), {"n": "2"})),
            call(revoked.key, tb.EVIDENCE, "deposit",
                 tb.deposit_args(sha256(b"read-access 3"), {"n": "3"})),
            call(tax.key, tb.INVOICE, "set_auditors", {"keys": [tax.key.public_key]}),
            call(admin.key, tb.GOV, "propose", tb.propose_args(
                "set_param", {"name": "gov.voting_period_ms", "value": 7_200_000})),
        ], regulator)
        amended, refused, _ = _commit(world, client, [
            call(depositor.key, tb.EVIDENCE, "amend",
                 tb.amend_args(first["log_index"], sha256(b"read-access 1b"))),
            call(revoked.key, tb.EVIDENCE, "amend",
                 tb.amend_args(first["log_index"], sha256(b"read-access 1c"))),
            call(tax.key, tb.INVOICE, "authorise_issuer", tb.authorise_issuer_args(
                issuer.key.public_key, "Reader Co.", TAX_ID, 1_000_000)),
        ], regulator)
        assert "error" in refused, "only the depositor may amend: a refused entry"
        plain = tb.invoice_args(NUMBER, {"key": buyer.key.public_key},
                                [tb.invoice_line("coffee", 2, 1500, 600)])
        _commit(world, client, [
            call(issuer.key, tb.INVOICE, "issue", tb.issue_args(
                plain, issuer.key.public_key, auditors=[tax.key.public_key])),
            call(admin0, tb.MEMBERS, "revoke", tb.revoke_args(parse_fingerprint(ca_der),
                                                               _serial(revoked))),
        ], regulator)
        scf = _put_scf(world, client, call)
    return Chain({"own": first["log_index"], "second": second["log_index"],
                  "revoked member's": theirs["log_index"], "amendment": amended["log_index"]},
                 digest, gov["log_index"], scf=scf)


def _put_scf(world: World, client: Client,
             call: Callable[[SigningKey, str, str, dict[str, Any]], SignedTx]
             ) -> dict[str, int]:
    """Supply-chain finance through real transactions: the enterprise member is the core
    enterprise, `supplier` its supplier, the funder member its bank. Returns the
    certificate ids by what they show."""
    role = {r: BY_NAME[r.value] for r in Role}
    core, funder, supplier = role[Role.ENTERPRISE], role[Role.FUNDER], BY_NAME[SUPPLIER]
    issuer, tax, regulator = (role[Role.INVOICE_ISSUER], role[Role.TAX_AUTHORITY],
                              role[Role.REGULATOR])
    backing = tb.invoice_args(SCF_NUMBER, {"key": core.key.public_key},
                              [tb.invoice_line("steel coil", 1, 500_000, 0)])
    _commit(world, client, [
        call(issuer.key, tb.INVOICE, "issue", tb.issue_args(
            backing, issuer.key.public_key, auditors=[tax.key.public_key])),
        call(funder.key, "scf", "set_line", {"core": core.key.public_key,
                                             "limit": 1_000_000}),
    ], regulator)

    def events(outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        assert all("events" in o for o in outcomes), outcomes
        return [o["events"][0]["data"] for o in outcomes]

    now_ms = int(time.time() * 1000)
    soon, later = now_ms + SHORT_TERM_MS, now_ms + 30 * DAY_MS
    contract = sha256(b"read-access supply contract")
    issued = events(_commit(world, client, [
        call(core.key, "scf", "issue", {"to": supplier.key.public_key, "amount": amount,
                                        "maturity": maturity, "contract": contract,
                                        "invoices": [SCF_NUMBER]})
        for amount, maturity in ((200_000, later), (50_000, later), (30_000, soon),
                                 (20_000, soon), (10_000, soon))], regulator))
    split, pending, frozen, lapsed, settled = (int(e["id"]) for e in issued)
    events(_commit(world, client, [call(supplier.key, "scf", "accept", {"id": i})
                                   for i in (split, frozen, settled)], regulator))
    *done, refused = _commit(world, client, [
        call(supplier.key, "scf", "split", {"id": split, "parts": [
            {"to": core.key.public_key, "amount": 50_000}]}),
        call(supplier.key, "scf", "finance", {"id": frozen, "funder": funder.key.public_key,
                                              "rate_bp": 500}),
        call(funder.key, "scf", "approve", {"id": pending, "ref": "BANK-0000"}),
    ], regulator)
    assert refused["error"] == "not_frozen", refused  # a refused scf entry, with a reason
    sent_back, financed = events(done)[0]["children"]
    events(_commit(world, client, [call(supplier.key, "scf", "finance", {
        "id": financed, "funder": funder.key.public_key, "rate_bp": 365})], regulator))
    events(_commit(world, client, [call(funder.key, "scf", "approve", {
        "id": financed, "ref": "BANK-0001"})], regulator))
    # Past the short maturity: the next block's time makes `frozen` overdue and `lapsed`
    # lapsed; `settled` is paid in it.
    time.sleep(max(0.0, (soon - time.time() * 1000) / 1000 + 0.5))
    events(_commit(world, client, [call(core.key, "scf", "settle", {
        "ids": [settled], "refs": ["PAY-0001"]})], regulator))
    return {"split": split, "pending": pending, "frozen and overdue": frozen,
            "lapsed": lapsed, "settled": settled, "sent back to the core": sent_back,
            "financed": financed}


def _samples(world: World, chain: Chain, height: int, log_size: int) -> dict[str, list[Sample]]:
    found: dict[str, list[Sample]] = defaultdict(list)

    def add(op: str, label: str, path: str, params: dict[str, str] | None = None,
            **kw: Any) -> None:
        found[op].append(Sample(label, path, params or {}, **kw))

    depositor, issuer = BY_NAME[Role.DEPOSITOR.value], BY_NAME[Role.INVOICE_ISSUER.value]
    # Public routes.
    add("openapi", "document", "/v1/openapi.json")
    add("status", "status", "/v1/status")
    add("checkpoint", "latest", "/v1/checkpoint")
    add("trust", "file", "/v1/trust")
    add("contracts", "all", "/v1/contracts")
    add("consistency", "1..head", "/v1/log/consistency", {"old": "1"})
    add("invoice_auditors", "keys", "/v1/apps/invoice/auditors")
    # One log entry: every entry of the log, and a missing one.
    for index, entry in sorted(world.entries.items()):
        body = entry.tx.body
        label = (f"entry {index} {body.contract}.{body.method} by "
                 f"{world.names.get(body.sender, body.sender.hex()[:8])}")
        tx_id = entry.tx.tx_id.hex()
        add("get_tx", label, f"/v1/tx/{tx_id}", entry=entry, ident=tx_id)
        add("wait_tx", label, f"/v1/tx/{tx_id}/wait", {"timeout_ms": "0"}, entry=entry,
            ident=tx_id, status=200 if entry.result.ok else 422)
        add("get_entry", label, f"/v1/log/entry/{index}", entry=entry, ident=str(index))
        add("receipt", label, f"/v1/proof/{index}", entry=entry, ident=str(index))
    missing = log_size + 100
    add("get_tx", "missing", f"/v1/tx/{MISSING_TX}", status=404, ident=MISSING_TX)
    add("wait_tx", "missing", f"/v1/tx/{MISSING_TX}/wait", {"timeout_ms": "0"}, status=404,
        ident=MISSING_TX)
    add("get_entry", "missing", f"/v1/log/entry/{missing}", status=404, ident=str(missing))
    add("receipt", "missing", f"/v1/proof/{missing}", status=404, ident=str(missing))
    add("list_txs", "all", "/v1/txs")
    add("list_txs", "evidence", "/v1/txs", {"contract": "evidence"})
    add("list_txs", "members.enrol", "/v1/txs", {"contract": "members", "method": "enrol"})
    add("list_txs", "by the depositor", "/v1/txs", {"sender": depositor.hex})
    add("list_txs", "scf", "/v1/txs", {"contract": "scf"})
    add("list_blocks", "all", "/v1/blocks")
    add("get_block", "1", "/v1/block/1")
    add("get_block", "missing", "/v1/block/1000000", status=404)
    for namespace, state_key in (
            ("members", member_key(depositor.key.public_key)),
            ("evidence", record_key(chain.deposits["own"])),
            ("gov", proposal_key(chain.proposal)),
            ("invoice", invoice_key(NUMBER)),
            ("scf", cert_key(chain.scf["financed"])),
            ("nosuchapp", b"key")):
        add("state_proof", namespace, f"/v1/state/proof/{namespaced(namespace, state_key).hex()}",
            namespace=namespace,
            # the evidence record's parties read its proof too (ADR 0017): its depositor
            entry=world.entries[chain.deposits["own"]] if namespace == "evidence" else None)
    own_entry = world.entries[chain.deposits["own"]]
    for label, names in (("the own deposit", ("own",)),
                         ("own and second", ("own", "second")),
                         ("own and the revoked member's", ("own", "revoked member's"))):
        indexes = [chain.deposits[n] for n in names]
        add("proof_set", label, "/v1/proofs", {"indexes": ",".join(map(str, indexes))},
            entries=tuple(world.entries[i] for i in indexes))
    add("proof_set", "own with its record", "/v1/proofs",
        {"indexes": str(chain.deposits["own"]),
         "state": namespaced("evidence", record_key(chain.deposits["own"])).hex()},
        entries=(own_entry,), namespace="evidence", entry=own_entry)
    add("proof_set", "missing", "/v1/proofs", {"indexes": str(missing)}, status=404)
    own_tx = world.entries[chain.deposits["own"]].tx.tx_id.hex()
    for label, q in (("height", str(height)), ("a deposit's tx id", own_tx),
                     ("a member key", depositor.hex), ("a digest", chain.digest.hex()),
                     ("an invoice number", NUMBER)):
        add("search", label, "/v1/search", {"q": q})
    # The applications' queries.
    for label, index in chain.deposits.items():
        add("evidence_deposit", label, "/v1/apps/evidence/deposit", {"index": str(index)},
            ident=str(index))
    add("evidence_deposit", "missing", "/v1/apps/evidence/deposit", {"index": str(missing)},
        status=404, ident=str(missing))
    add("evidence_deposits", "all", "/v1/apps/evidence/deposits")
    add("evidence_deposits", "of a digest", "/v1/apps/evidence/deposits",
        {"digest": chain.digest.hex()})
    add("evidence_amendments", "of the first", "/v1/apps/evidence/amendments",
        {"of": str(chain.deposits["own"])})
    add("evidence_amendments", "of none", "/v1/apps/evidence/amendments", {"of": str(missing)})
    add("evidence_awaiting", "a member key", "/v1/apps/evidence/awaiting",
        {"signer": depositor.hex})
    add("evidence_awaiting", "an organisation", "/v1/apps/evidence/awaiting",
        {"org": "test-org"})
    add("gov_proposals", "all", "/v1/apps/gov/proposals")
    add("gov_proposal", "the proposal", "/v1/apps/gov/proposal", {"id": str(chain.proposal)},
        ident=str(chain.proposal))
    add("gov_proposal", "missing", "/v1/apps/gov/proposal", {"id": str(missing)}, status=404,
        ident=str(missing))
    add("gov_settings", "now", "/v1/apps/gov/settings")
    add("invoice_invoice", "issued", "/v1/apps/invoice/invoice", {"number": NUMBER},
        ident=NUMBER)
    add("invoice_invoice", "missing", "/v1/apps/invoice/invoice", {"number": MISSING_NUMBER},
        status=404, ident=MISSING_NUMBER)
    add("invoice_invoices", "of the issuer", "/v1/apps/invoice/invoices", {"issuer": issuer.hex})
    add("invoice_invoices", "of a non-issuer", "/v1/apps/invoice/invoices",
        {"issuer": depositor.hex})
    for label, who, status in (("issuer key", issuer.hex, 200), ("tax id", TAX_ID, 200),
                               ("unknown tax id", UNKNOWN_TAX_ID, 404),
                               ("non-issuer key", depositor.hex, 200)):
        add("invoice_stats", label, "/v1/apps/invoice/stats", {"issuer": who,
                                                                "month": chain.month},
            status=status, ident=who)
    add("members_orgs", "all", "/v1/apps/members/orgs")
    add("members_org", ORG, "/v1/apps/members/org", {"org": ORG}, ident=ORG)
    add("members_org", "nobody", "/v1/apps/members/org", {"org": "nobody"}, status=404,
        ident="nobody")
    add("members_members", f"org {ORG}", "/v1/apps/members/members", {"org": ORG}, ident=ORG)
    add("members_members", "org nobody", "/v1/apps/members/members", {"org": "nobody"},
        status=404, ident="nobody")
    add("members_member", "the depositor", "/v1/apps/members/member", {"key": depositor.hex},
        ident=depositor.hex)
    add("members_member", "self", "/v1/apps/members/member", self_key=True)
    add("members_member", "missing", "/v1/apps/members/member", {"key": MISSING_KEY},
        status=404, ident=MISSING_KEY)
    _scf_samples(add, chain)
    return dict(found)


def _scf_samples(add: Callable[..., None], chain: Chain) -> None:
    """Every scf query: existing records of every party and state, hidden ones (each
    caller but the parties and the regulator), and missing ones."""
    core, supplier, funder = (BY_NAME[Role.ENTERPRISE.value], BY_NAME[SUPPLIER],
                              BY_NAME[Role.FUNDER.value])
    nobody = BY_NAME[Role.DEPOSITOR.value]
    base = "/v1/apps/scf/"
    for label, cert_id in chain.scf.items():
        for op in ("certificate", "lineage"):
            add(f"scf_{op}", label, base + op, {"id": str(cert_id)}, ident=str(cert_id))
        if label in ("split", "pending", "lapsed"):  # the roots
            add("scf_tree", label, base + "tree", {"id": str(cert_id)})
    for op in ("certificate", "lineage"):
        add(f"scf_{op}", "missing", base + op, {"id": str(MISSING_ID)}, status=404,
            ident=str(MISSING_ID))
    add("scf_tree", "missing", base + "tree", {"id": str(MISSING_ID)})
    members = (("core", core.hex), ("supplier", supplier.hex), ("funder", funder.hex),
               ("a depositor", nobody.hex), ("missing", MISSING_KEY))
    for label, member in members:
        add("scf_held", label, base + "held", {"member": member})
        add("scf_incoming", label, base + "incoming", {"member": member})
        add("scf_issued", label, base + "issued", {"core": member})
        add("scf_due", label, base + "due", {"core": member})
        add("scf_financed", label, base + "financed", {"funder": member})
        add("scf_funder_totals", label, base + "funder_totals", {"funder": member},
            ident=member)
        add("scf_outstanding", label, base + "outstanding", {"core": member},
            status=200 if member == core.hex else 404, ident=member)
    add("scf_overdue", "all", base + "overdue")
    add("scf_overdue", "a page of one", base + "overdue", {"limit": "1"})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("read-access")
    with running_node(root, "read-access") as node, \
            httpx.Client(base_url=node.url, timeout=30) as http:
        w = World(node, http, Pacer())
        chain = _populate(w)
        w.scf = chain.scf
        regulator = BY_NAME[Role.REGULATOR.value]
        status = w.http.get("/v1/status").json()
        for index in range(status["log_size"]):
            answer = w.read(f"/v1/log/entry/{index}", regulator)
            assert answer.status_code == 200, answer.text
            w.entries[index] = LogEntry.decode(base64.b64decode(answer.json()["entry"]))
        invoice = w.read("/v1/apps/invoice/invoice", regulator, {"number": NUMBER})
        chain.month = invoice.json()["period"]
        w.samples = _samples(w, chain, status["height"], status["log_size"])
        # The references: what the regulator, who reads everything, gets.
        for op, samples in w.samples.items():
            for sample in samples:
                if sample.self_key:
                    continue
                sample.reference = w.read(sample.path, regulator, sample.params)
                assert sample.reference.status_code == sample.status, (
                    op, sample.label, sample.reference.text)
        yield w


# --- the oracle -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    status: int
    reason: tuple[str, ...] = ()
    """Fragments the refusal's reason must hold."""
    body: Callable[[httpx.Response], str | None] | None = None
    """A check of an answer with data: a problem, or None."""


def _holds(caller: Caller, roles: frozenset[Role]) -> bool:
    return Role.REGULATOR in caller.roles or not caller.roles.isdisjoint(roles)


def _forbidden(roles: frozenset[Role], party: bool = False) -> Expect:
    names = tuple(sorted({r.value for r in roles} | {Role.REGULATOR.value}))
    return Expect(403, names + (("or be a party",) if party else ()))


def entry_visible(entry: LogEntry, caller: Caller) -> bool:
    """ADR 0015: the regulator, the application's readers, the sender, the parties."""
    body = entry.tx.body
    app = REGISTRY.applications.get(body.contract)
    if Role.REGULATOR in caller.roles:
        return True
    if app is not None and not caller.roles.isdisjoint(app.readers):
        return True
    if body.sender == caller.key.public_key:
        return True
    if app is None or app.entry_audience is None:
        return False
    events = entry.result.events if entry.result.ok else ()
    return app.entry_audience(body.method, body.args, events).admits(caller.reader)


def _same_as(sample: Sample) -> Callable[[httpx.Response], str | None]:
    def check(response: httpx.Response) -> str | None:
        assert sample.reference is not None
        if response.content != sample.reference.content:
            return f"differs from the regulator's answer: {response.text[:300]}"
        return None
    return check


def _items_check(want: list[Any], next_: Any) -> Callable[[httpx.Response], str | None]:
    def check(response: httpx.Response) -> str | None:
        page = response.json()
        if page["items"] != want or page["next"] != next_:
            return (f"items {[_ident(i) for i in page['items']]} next {page['next']!r}, "
                    f"want {[_ident(i) for i in want]} next {next_!r}")
        return None
    return check


def _ident(item: dict[str, Any]) -> Any:
    for name in ("index", "key", "number", "id", "tx_id", "org"):
        if name in item:
            return item[name]
    return item


def _readers_of(namespace: str | None) -> frozenset[Role]:
    app = None if namespace is None else REGISTRY.applications.get(namespace)
    return frozenset() if app is None else app.readers


def _state_readable(sample: Sample, caller: Caller) -> bool:
    """A state proof: the namespace's readers, the regulator, and (an evidence record)
    its depositor, the party this world's plain deposits have (ADR 0017)."""
    if _holds(caller, _readers_of(sample.namespace)):
        return True
    return sample.entry is not None and sample.entry.tx.body.sender == caller.key.public_key


def _public_items(route: Route, sample: Sample) -> Expect:
    """A query with public items, asked with no credential: the public items of the
    reference (a list), or the item if public, else the members-only refusal."""
    query = route.query
    assert query is not None and query.audience is not None and sample.reference is not None
    if query.paged:
        if sample.status != 200:
            return Expect(200, body=_items_check([], None))
        reference = sample.reference.json()
        want = [i for i in reference["items"]
                if query.audience(msgspec.convert(i, query.result)).admits(ANONYMOUS)]
        return Expect(200, body=_items_check(want, reference["next"]))
    if sample.status == 200 and query.audience(
            msgspec.convert(sample.reference.json(), query.result)).admits(ANONYMOUS):
        return Expect(200, body=_same_as(sample))
    return Expect(401, ("members-only",))


def _filtered_page(route: Route, sample: Sample, caller: Caller) -> Expect:
    """A list query's answer to a member without its roles: the reference's items its
    audience admits (a missing parent: an empty page, as for an existing one)."""
    query = route.query
    assert query is not None and query.audience is not None and sample.reference is not None
    if sample.status != 200:
        return Expect(200, body=_items_check([], None))
    reference = sample.reference.json()
    want = [i for i in reference["items"]
            if query.audience(msgspec.convert(i, query.result)).admits(caller.reader)]
    return Expect(200, body=_items_check(want, reference["next"]))


def _own_record(caller: Caller) -> Expect:
    def check(response: httpx.Response) -> str | None:
        record = response.json()
        if record["key"] != caller.hex or record["status"] != "active":
            return f"not the caller's own active record: {record}"
        return None
    return Expect(200, body=check)


def _txs(sample: Sample, world: World, caller: Caller) -> Expect:
    def matches(entry: LogEntry) -> bool:
        body = entry.tx.body
        p = sample.params
        return (p.get("contract", body.contract) == body.contract
                and p.get("method", body.method) == body.method
                and p.get("sender", body.sender.hex()) == body.sender.hex()
                and entry_visible(entry, caller))

    want = [world.entries[i].tx.tx_id.hex() for i in sorted(world.entries, reverse=True)
            if matches(world.entries[i])]

    def check(response: httpx.Response) -> str | None:
        page = response.json()
        got = [item["tx_id"] for item in page["items"]]
        if got != want or page["next"] is not None:
            return f"tx ids {got} next {page['next']!r}, want {want}"
        return None
    return Expect(200, body=check)


def _search(sample: Sample, world: World, caller: Caller) -> Expect:
    assert sample.reference is not None
    reference = sample.reference.json()
    by_tx = {e.tx.tx_id.hex(): e for e in world.entries.values()}

    def admitted(hit: dict[str, Any]) -> bool:
        if hit["kind"] == "block":
            return True
        if hit["kind"] == "transaction":
            return entry_visible(by_tx[hit["id"]], caller)
        return _holds(caller, REGISTRY.applications[hit["app"]].readers)

    want = {"query": reference["query"], "found": [h for h in reference["found"] if admitted(h)]}

    def check(response: httpx.Response) -> str | None:
        return None if response.json() == want else f"found {response.json()}, want {want}"
    return Expect(200, body=check)


def _access(world: World, route: Route, sample: Sample, caller: Caller | None) -> Expect:
    """What `caller` (None: anonymous) may get of `sample`, from the declarations."""
    if route.access == "public":
        return Expect(sample.status)
    if caller is None:
        if route.query is not None and route.query.public_items:
            return _public_items(route, sample)
        return Expect(401, ("members-only",))
    natural = Expect(sample.status,
                     body=_same_as(sample) if sample.status in (200, 422) else None)
    if route.access == "members":
        allowed = _holds(caller, route.roles) if route.roles else True
        return natural if allowed else _forbidden(route.roles)
    query, op = route.query, route.operation_id
    if query is not None:
        if sample.self_key:
            allowed = _holds(caller, query.roles) or query.audience is not None
            return _own_record(caller) if allowed else _forbidden(query.roles)
        if _holds(caller, query.roles):
            return natural
        if query.audience is None:
            return _forbidden(query.roles)
        if query.paged:
            return _filtered_page(route, sample, caller)
        assert sample.reference is not None
        if sample.status == 200 and query.audience(
                msgspec.convert(sample.reference.json(), query.result)).admits(caller.reader):
            return natural
        return _forbidden(query.roles, party=True)
    if op in ENTRY_ROUTES:
        if sample.entry is not None and entry_visible(sample.entry, caller):
            return natural
        if sample.entry is None and Role.REGULATOR in caller.roles:
            return natural  # nothing is hidden from the regulator: any 404 text will do
        return Expect(404, ("not found, or not yours to read",))
    if op == "list_txs":
        return _txs(sample, world, caller)
    if op == "state_proof":
        return natural if _state_readable(sample, caller) else _forbidden(
            _readers_of(sample.namespace), party=sample.entry is not None)
    if op == "proof_set":
        readable = (sample.entries and all(entry_visible(e, caller) for e in sample.entries)
                    and (sample.namespace is None or _state_readable(sample, caller)))
        if readable:
            return natural
        if sample.entries and all(entry_visible(e, caller) for e in sample.entries):
            return _forbidden(_readers_of(sample.namespace), party=True)
        if not sample.entries and Role.REGULATOR in caller.roles:
            return natural
        return Expect(404, ("not found, or not yours to read",))
    if op == "search":
        return _search(sample, world, caller)
    raise AssertionError(f"no oracle for the records route {op}: add one")


def expected(world: World, route: Route, sample: Sample, caller: Caller, cred: str
             ) -> list[Expect]:
    """One expectation per answer `World.calls` gets."""
    if cred == WRONG:
        return [Expect(401, ("does not verify",))]
    if cred == EXPIRED:
        return [Expect(401, ("expired",))]
    if cred == NONE:
        return [_access(world, route, sample, None)]
    if caller.revoked:
        # A member that is not in good standing is refused whatever it signs; its
        # nonces are never remembered (api/access.py), so a replay reads the same.
        return [Expect(401, ("revoked",))] * (2 if cred == REPLAYED else 1)
    first = _access(world, route, sample, caller)
    return [first, Expect(401, ("replayed",))] if cred == REPLAYED else [first]


ERROR_CODES = {401: {"unauthenticated", "bad_signature"}, 403: {"forbidden"},
               404: {"not_found"}}


def judge(response: httpx.Response, expect: Expect) -> str | None:
    """What is wrong with `response` against `expect`, or None."""
    status = response.status_code
    if status == 429:
        return f"rate limited ({response.text}): this module's pacing is wrong"
    if status != expect.status:
        return f"status {status}, want {expect.status}: {response.text[:300]}"
    if status < 400 or status == 422:  # 422: a committed entry its contract refused
        return None if expect.body is None else expect.body(response)
    try:
        body = response.json()
    except ValueError:
        return f"a refusal that is not JSON: {response.text[:200]}"
    if set(body) != {"error", "reason"} or not body["reason"]:
        return f"a refusal without a reason: {body}"
    if body["error"] not in ERROR_CODES.get(status, {body["error"]}):
        return f"error code {body['error']!r} for {status}"
    missing = [f for f in expect.reason if f not in body["reason"]]
    if missing:
        return f"reason {body['reason']!r} does not say {missing}"
    if status == 401 and response.headers.get("Accept-Signature") != ACCEPT_SIGNATURE:
        return f"401 without the Accept-Signature header: {dict(response.headers)}"
    return None


def normalised(response: httpx.Response, sample: Sample) -> str:
    """A refusal's body with the identifier the call named blanked out."""
    text = response.text
    if sample.ident is not None:
        text = re.sub(rf"(?<![0-9a-zA-Z]){re.escape(sample.ident)}(?![0-9a-zA-Z])", "<ID>",
                      text)
    return text


@dataclass
class Tally:
    """What a run exercised, and what it found wrong."""

    combos: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    statuses: dict[tuple[str, str], Counter[int]] = field(
        default_factory=lambda: defaultdict(Counter))
    """(route, credential) -> statuses answered."""
    requests: int = 0
    problems: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    refusals: dict[tuple[str, str, int, str], dict[str, str]] = field(
        default_factory=lambda: defaultdict(dict))

    def run(self, world: World, route: Route, sample: Sample, caller: Caller, cred: str,
            variant: int = 0) -> None:
        answers = world.calls(caller, cred, sample, variant)
        expects = expected(world, route, sample, caller, cred)
        assert len(answers) == len(expects)
        op = route.operation_id
        self.combos[(op, caller.name, cred)] += 1
        for answer, expect in zip(answers, expects, strict=True):
            self.requests += 1
            self.statuses[(op, cred)][answer.status_code] += 1
            problem = judge(answer, expect)
            if problem is not None:
                self.problems[(op, sample.label)].append(
                    f"{op} [{sample.label}] as {caller.name} with {cred}: {problem}")
            who = "anonymous" if cred == NONE else caller.name
            if answer.status_code in (403, 404) or (answer.status_code == 401 and cred == NONE):
                group = (op, who, answer.status_code, sample.namespace or "")
                self.refusals[group].setdefault(normalised(answer, sample), sample.label)

    def uniformity(self) -> None:
        """Per route, caller and status, every refusal reads the same (identifier
        blanked out): a hidden record is refused exactly as a missing one."""
        for (op, who, status, _), bodies in self.refusals.items():
            if len(bodies) > 1:
                self.problems[(op, f"uniform {status}")].append(
                    f"{op} as {who}: {status} refusals differ: "
                    + " | ".join(f"[{label}] {body[:160]}" for body, label in bodies.items()))


def _verdict(tally: Tally, *, known_must_fail: bool) -> None:
    unknown = {k: v for k, v in tally.problems.items() if k not in KNOWN_BUGS}
    assert not unknown, "\n".join(
        f"{len(v)} x {v[0]}" for v in unknown.values())
    for bug in sorted(set(KNOWN_BUGS) & set(tally.problems)):
        print(f"known bug, {len(tally.problems[bug])} combination(s), e.g. "
              f"{tally.problems[bug][0][:300]}")
    if known_must_fail:
        fixed = sorted(set(KNOWN_BUGS) - set(tally.problems))
        assert not fixed, f"fixed? remove from KNOWN_BUGS: {fixed}"


# --- the tests ------------------------------------------------------------------------------


def test_every_get_route_has_samples(world: World) -> None:
    """A new GET route (core, or any application's query) fails here until it has
    samples in `_samples` (and, for a records route, an oracle in `_access`)."""
    assert {r.operation_id for r in GET_ROUTES} == set(world.samples)
    for route in GET_ROUTES:
        if route.access != "public":
            assert any(s.status < 400 for s in world.samples[route.operation_id]), route.path


def test_every_route_role_and_credential(world: World) -> None:
    started = time.monotonic()
    tally = Tally()
    for r, route in enumerate(GET_ROUTES):
        samples = world.samples[route.operation_id]
        for c, caller in enumerate(CALLERS):
            for k, cred in enumerate(CREDENTIALS):
                if cred == VALID and not caller.revoked:
                    chosen = samples
                else:
                    chosen = [samples[(c * len(CREDENTIALS) + k + r) % len(samples)]]
                for sample in chosen:
                    tally.run(world, route, sample, caller, cred, variant=(r + c) % 2)
    tally.uniformity()
    elapsed = time.monotonic() - started
    everything = sum(tally.statuses.values(), Counter())
    print(f"\nread access: {len(tally.combos)} (route, caller, credential) combinations, "
          f"{sum(tally.combos.values())} calls, {tally.requests} requests in {elapsed:.1f} s; "
          f"statuses {dict(sorted(everything.items()))}")
    _verdict(tally, known_must_fail=True)

    # Not vacuous: every combination ran, every sample was read by every member in good
    # standing, non-public routes answered members with data and anonymous callers with
    # refusals, and every kind of answer the oracle knows was seen.
    want = {(r.operation_id, c.name, k) for r in GET_ROUTES for c in CALLERS
            for k in CREDENTIALS}
    assert set(tally.combos) == want
    members = [c for c in CALLERS if not c.revoked]
    assert sum(tally.combos[(op, c.name, VALID)] for op in world.samples for c in members) \
        == len(members) * sum(len(s) for s in world.samples.values())
    for route in GET_ROUTES:
        op = route.operation_id
        assert any(s < 300 for s in tally.statuses[(op, VALID)]), route.path
        for cred in (WRONG, EXPIRED):
            assert set(tally.statuses[(op, cred)]) == {401}, (route.path, cred)
        assert tally.statuses[(op, REPLAYED)][401] > 0, route.path
        anonymous = set(tally.statuses[(op, NONE)])
        if route.query is not None and route.query.public_items:
            # public items answer anyone (none is public in this world: empty lists,
            # and single items refused as members-only)
            assert anonymous <= {200, 401}, (route.path, anonymous)
        else:
            assert anonymous == {401} if route.access != "public" else \
                anonymous <= {200}, (route.path, anonymous)
    assert all(everything[s] > 0 for s in (200, 401, 403, 404, 422)), everything


@st.composite
def combinations(draw: st.DrawFn, world: World) -> tuple[Route, Sample, Caller, str, int]:
    route = draw(st.sampled_from(GET_ROUTES))
    samples = [s for s in world.samples[route.operation_id]
               if (route.operation_id, s.label) not in KNOWN_BUGS]
    return (route, draw(st.sampled_from(samples)), draw(st.sampled_from(CALLERS)),
            draw(st.sampled_from(CREDENTIALS)), draw(st.integers(0, 1)))


def test_any_route_role_credential_and_record(world: World) -> None:
    tally = Tally()

    @settings(max_examples=300, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(data=st.data())
    def prop(data: st.DataObject) -> None:
        route, sample, caller, cred, variant = data.draw(combinations(world))
        before = {k: len(v) for k, v in tally.problems.items()}
        tally.run(world, route, sample, caller, cred, variant)
        new = {k: v[before.get(k, 0):] for k, v in tally.problems.items()
               if len(v) > before.get(k, 0)}
        assert not new, new

    prop()
    assert len(tally.combos) > 100 and set(k for _, _, k in tally.combos) == set(CREDENTIALS)


LEAKS = [
    # (what, path of the hidden record, path of a missing one)
    ("a deposit by index", "/v1/apps/evidence/deposit?index={own}",
     "/v1/apps/evidence/deposit?index={missing}"),
    ("a log entry", "/v1/log/entry/{own}", "/v1/log/entry/{missing}"),
    ("a receipt", "/v1/proof/{own}", "/v1/proof/{missing}"),
    ("an invoice", f"/v1/apps/invoice/invoice?number={NUMBER}",
     f"/v1/apps/invoice/invoice?number={MISSING_NUMBER}"),
    ("a member", "/v1/apps/members/member?key={depositor}",
     f"/v1/apps/members/member?key={MISSING_KEY}"),
    ("a proposal", "/v1/apps/gov/proposal?id={proposal}",
     "/v1/apps/gov/proposal?id={missing}"),
    ("a tax id's statistics", f"/v1/apps/invoice/stats?issuer={TAX_ID}&month=2026-01",
     f"/v1/apps/invoice/stats?issuer={UNKNOWN_TAX_ID}&month=2026-01"),
    ("a certificate", "/v1/apps/scf/certificate?id={pending}",
     f"/v1/apps/scf/certificate?id={MISSING_ID}"),
    ("a certificate's lineage", "/v1/apps/scf/lineage?id={pending}",
     f"/v1/apps/scf/lineage?id={MISSING_ID}"),
]
LEAK_BUGS: dict[str, str] = {}
LEAKS += [("a transaction by id", "/v1/tx/{own_tx}", f"/v1/tx/{MISSING_TX}"),
          ("waiting for a transaction", "/v1/tx/{own_tx}/wait?timeout_ms=0",
           f"/v1/tx/{MISSING_TX}/wait?timeout_ms=0")]


@pytest.mark.parametrize(("what", "hidden", "missing", "who"), [
    pytest.param(*leak, who, id=f"{leak[0]}-{who}", marks=[
        pytest.mark.xfail(strict=True, reason=LEAK_BUGS[leak[0]])]
        if leak[0] in LEAK_BUGS and who != "anonymous" else [])
    for leak in LEAKS for who in (Role.FUNDER.value, Role.CARRIER.value, "anonymous")])
def test_no_answer_tells_whether_a_hidden_record_exists(
        world: World, what: str, hidden: str, missing: str, who: str) -> None:
    """A member without rights (or nobody) gets the same status and the same body for
    a hidden record as for a missing one, but for the identifier it asked for."""
    own = next(i for i, e in world.entries.items()
               if e.tx.body.method == "deposit"
               and e.tx.body.sender == BY_NAME[Role.DEPOSITOR.value].key.public_key)
    proposal = next(i for i, e in world.entries.items() if e.tx.body.method == "propose")
    names = {"own": own, "missing": max(world.entries) + 100, "proposal": proposal,
             "depositor": BY_NAME[Role.DEPOSITOR.value].hex,
             "own_tx": world.entries[own].tx.tx_id.hex(),
             "pending": world.scf["pending"]}
    caller = BY_NAME.get(who, BY_NAME[Role.FUNDER.value])
    assert who == "anonymous" or not entry_visible(world.entries[own], caller)
    cred = NONE if who == "anonymous" else VALID
    answers, bodies = [], []
    for template in (hidden, missing):
        url = httpx.URL(template.format(**names))
        params = dict(url.params)
        ident = next(iter(params.values())) if params and "wait" not in url.path else \
            url.path.removesuffix("/wait").rsplit("/", 1)[1]
        sample = Sample(what, url.path, params, ident=ident)
        answer = world.calls(caller, cred, sample)[0]
        answers.append(answer)
        bodies.append(normalised(answer, sample))
    assert answers[0].status_code == answers[1].status_code, bodies
    assert answers[0].status_code in (401, 403, 404), bodies[0]
    assert bodies[0] == bodies[1]
