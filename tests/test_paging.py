"""Paging by cursor, as a property over a real node that keeps committing.

For every paged operation in the served OpenAPI document (one whose 200 answer is a
Page: `items` and `next`), walking every page, with page sizes Hypothesis draws, gives
every item that existed when the walk started exactly once and nothing twice, in the
list's order, while a background thread commits new transactions between page
fetches. In a newest-first list what was added during the walk is newer than what
the walk started from (and so comes, if at all, before it); in a key-ordered list it
may appear wherever its key falls, once.

Each paged operation needs a way to fill its list and to add to it (`LISTS`): an
operation the document serves without one fails the test by name, so a new list is
never skipped silently. The commits are a handshake (the walker asks, the committer
commits and answers once the transactions are in), so what "added during the walk"
means does not depend on timing.

Reads are members-only (ADR 0015): the lists are walked by a regulator (enrolled by the
network's admin), who reads every item of every list; each writer waits for its own
transactions, signing with its own key.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import signed_now
from tests.nodes import RunningNode, running_node
from tidechain.client import txbuilder as tb
from tidechain.client.auth import MemberSignatures
from tidechain.client.files import issue_member, org_dirs, read_key
from tidechain.core.crypto import SigningKey, sha256
from tidechain.core.limits import MAX_PAGE_SIZE
from tidechain.identity.roles import Role
from tidechain.ledger.types import SignedTx

CBOR = "application/cbor"
TAX_ID = "91350100M000100Y43"
MAX_PAGES_PER_WALK = 8
"""A walk's page size is drawn so that it takes at most this many fetches (each one
followed by a commit), whatever the list has grown to: the run stays bounded."""
EXAMPLES_PER_WALK = 6
COMMIT_WAIT_S = 60.0
"""How long the walker waits for the committer's answer: a bound on a hang, never a
timing assertion (a commit takes tens of milliseconds)."""


# --- transactions --------------------------------------------------------------------------




@dataclass
class World:
    """The node, the keys that write to it, and what the lists are filled with: a
    digest deposited again and again, a deposit amended again and again, members
    enrolled, proposals made (and approved, so that fewer than the bound stay open)."""

    node: RunningNode
    http: httpx.Client
    """The regulator's: it reads every list whole."""
    chain_id: bytes
    depositor: SigningKey
    admin: SigningKey
    org: str
    shared_digest: bytes = b""
    amended: int = -1
    open_proposal: int | None = None
    members_enrolled: int = 0
    invoices_issued: int = 0
    tax: SigningKey = field(default_factory=lambda: SigningKey(bytes(32)))
    issuer: SigningKey = field(default_factory=lambda: SigningKey(bytes(32)))
    buyer: SigningKey = field(default_factory=lambda: SigningKey(bytes(32)))
    core: SigningKey = field(default_factory=lambda: SigningKey(bytes(32)))
    supplier: SigningKey = field(default_factory=lambda: SigningKey(bytes(32)))
    funder: SigningKey = field(default_factory=lambda: SigningKey(bytes(32)))
    first_certificate: int = 0
    writers: dict[bytes, httpx.Client] = field(default_factory=dict)
    """A client per writing key, its requests signed by that key (closed by `close`)."""

    def as_member(self, key: SigningKey) -> httpx.Client:
        """HTTP signed by `key` (RFC 9421): a writer reading its own transactions."""
        if key.public_key not in self.writers:
            self.writers[key.public_key] = httpx.Client(
                base_url=self.node.url, timeout=60, auth=MemberSignatures(key))
        return self.writers[key.public_key]

    def close(self) -> None:
        for client in self.writers.values():
            client.close()

    def submit(self, txs: list[SignedTx]) -> list[dict[str, Any]]:
        """Submit `txs` as one batch; each must commit and apply (its sender waits).
        Submission needs no credential: each transaction is signed."""
        answer = httpx.post(f"{self.node.url}/v1/tx/batch", timeout=60,
                            content=cbor2.dumps([t.encode() for t in txs]),
                            headers={"content-type": CBOR})
        assert answer.status_code == 200, answer.text
        assert all("tx_id" in r for r in answer.json()["results"]), answer.text
        out = []
        for tx in txs:
            sender = next(k for k in self._keys() if k.public_key == tx.body.sender)
            waited = self.as_member(sender).get(f"/v1/tx/{tx.tx_id.hex()}/wait",
                                                params={"timeout_ms": 30_000})
            assert waited.status_code == 200, waited.text
            out.append(waited.json())
        return out

    def _keys(self) -> list[SigningKey]:
        return [self.depositor, self.admin, self.tax, self.issuer, self.buyer, self.core,
                self.supplier, self.funder]

    def deposit(self, digest: bytes | None = None) -> SignedTx:
        return signed_now(self.depositor, self.chain_id, "evidence", "deposit",
                      {"digest": digest or sha256(os.urandom(16)), "meta": {}})

    def cosigned(self) -> SignedTx:
        """A deposit naming the depositor itself and the organisation as co-signers
        (evidence v2): an item of both forms of the `awaiting` list."""
        return signed_now(self.depositor, self.chain_id, "evidence", "deposit", {
            "digest": sha256(os.urandom(16)), "meta": {},
            "cosigners": [{"key": self.depositor.public_key},
                          {"org": self.org, "role": "enterprise"}]})

    def amend(self) -> SignedTx:
        return signed_now(self.depositor, self.chain_id, "evidence", "amend",
                      {"of": self.amended, "digest": sha256(os.urandom(16)), "meta": {}})

    def enrol(self, roles: tuple[Role, ...] = (Role.DEPOSITOR,)) -> tuple[SignedTx, SigningKey]:
        """The enrolment of a new member (by the admin) and the member's key."""
        self.members_enrolled += 1
        key = SigningKey(sha256(b"paging member %d" % self.members_enrolled))
        org = next(o for o in org_dirs(self.node.net) if o.directory.name == self.org)
        cert = issue_member(org, f"member-{self.members_enrolled}", key.public_key,
                            roles, int(time.time() * 1000))
        return signed_now(self.admin, self.chain_id, "members", "enrol", {"cert": cert}), key

    def start_invoicing(self) -> None:
        """A tax authority, an authorised issuer and a buyer, and the audit key."""
        (tax_tx, self.tax), (issuer_tx, self.issuer), (buyer_tx, self.buyer) = (
            self.enrol((role,)) for role in (Role.TAX_AUTHORITY, Role.INVOICE_ISSUER,
                                             Role.DEPOSITOR))
        self.submit([tax_tx, issuer_tx, buyer_tx])
        self.submit([signed_now(self.tax, self.chain_id, "invoice", "set_auditors",
                            {"keys": [self.tax.public_key]}),
                     signed_now(self.tax, self.chain_id, "invoice", "authorise_issuer",
                            tb.authorise_issuer_args(self.issuer.public_key, "Paging Co.",
                                                     TAX_ID, 10**12))])

    def start_financing(self) -> None:
        """A core enterprise, its supplier and a funder; the core's credit line."""
        (core_tx, self.core), (supplier_tx, self.supplier), (funder_tx, self.funder) = (
            self.enrol((role,)) for role in (Role.ENTERPRISE, Role.ENTERPRISE, Role.FUNDER))
        self.submit([core_tx, supplier_tx, funder_tx])
        self.submit([signed_now(self.funder, self.chain_id, "scf", "set_line",
                                {"core": self.core.public_key, "limit": 10**12})])

    def scf_call(self, key: SigningKey, method: str, args: dict[str, Any]) -> dict[str, Any]:
        return self.submit([signed_now(key, self.chain_id, "scf", method, args)])[0]

    def fill_financing(self, rounds: int) -> None:
        """Certificates accepted and financed (the funder's list), and some that mature
        in seconds, accepted and left unpaid (the overdue list)."""
        for n in range(rounds):
            soon = n % 2 == 1
            issued = self.submit([self.certificate(maturity_ms=3_000 if soon else None)])[0]
            cert_id = issued["events"][0]["data"]["id"]
            self.scf_call(self.supplier, "accept", {"id": cert_id})
            if soon:
                continue
            self.scf_call(self.supplier, "finance", {"id": cert_id,
                                                     "funder": self.funder.public_key,
                                                     "rate_bp": 350})
            self.scf_call(self.funder, "approve", {"id": cert_id, "ref": f"PAY-{n}"})
        time.sleep(3.5)  # the short ones mature, unpaid: overdue

    def certificate(self, maturity_ms: int | None = None) -> SignedTx:
        """A certificate issued to the supplier (awaiting its acceptance), backed by an
        e-invoice from the suppliers' side to the core enterprise, committed first."""
        invoice = self.invoice(buyer=self.core)
        self.submit([invoice])
        total = 1590  # the line below: 1,500 fen and 6 % tax
        return signed_now(self.core, self.chain_id, "scf", "issue", {
            "to": self.supplier.public_key, "amount": total,
            "maturity": int(time.time() * 1000) + (maturity_ms or 30 * 86_400_000),
            "contract": sha256(b"supply contract"),
            "invoices": [invoice.body.args["number"]]})

    def invoice(self, buyer: SigningKey | None = None) -> SignedTx:
        self.invoices_issued += 1
        number = f"0440{self.invoices_issued:016d}"
        plain = tb.invoice_args(number, {"key": (buyer or self.buyer).public_key},
                                [tb.invoice_line("coffee", 1, 1500, 600)])
        return signed_now(self.issuer, self.chain_id, "invoice", "issue", tb.issue_args(
            plain, self.issuer.public_key, auditors=[self.tax.public_key]))

    def propose(self) -> list[SignedTx]:
        """A proposal, and the approval of the one before (it passes: one org)."""
        txs = [signed_now(self.admin, self.chain_id, "gov", "propose", {
            "action": "set_param", "args": {"name": "gov.voting_period_ms",
                                            "value": 3_600_000}, "effective_height": 0})]
        if self.open_proposal is not None:
            txs.append(signed_now(self.admin, self.chain_id, "gov", "vote",
                              {"proposal": self.open_proposal, "approve": True}))
        return txs

    def round(self, kinds: tuple[str, ...]) -> None:
        """One commit of each kind asked for: what adds an item to the list walked."""
        txs: list[SignedTx] = []
        for kind in kinds:
            if kind == "deposit":
                txs.append(self.deposit())
            elif kind == "shared":
                txs.append(self.deposit(self.shared_digest))
            elif kind == "amend":
                txs.append(self.amend())
            elif kind == "cosigned":
                txs.append(self.cosigned())
            elif kind == "member":
                txs.append(self.enrol()[0])
            elif kind == "invoice":
                txs.append(self.invoice())
            elif kind == "certificate":
                txs.append(self.certificate())
            elif kind == "proposal":
                proposal = self.propose()
                txs.extend(proposal)
            else:
                raise AssertionError(f"no such commit kind {kind!r}")
        committed = self.submit(txs)
        for tx, answer in zip(txs, committed, strict=True):
            if tx.body.contract == "gov" and tx.body.method == "propose":
                self.open_proposal = answer["log_index"]


# --- the lists -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    """How a paged list is read and filled: the field naming an item, whether the list
    is newest first (else in key order, ascending), the parameter sets to walk it with,
    and the commit kinds that add to it."""

    ident: str
    newest_first: bool
    walks: Callable[[World], list[dict[str, str]]]
    adds: tuple[str, ...]


LISTS: dict[str, Listing] = {
    "/v1/blocks": Listing("height", True, lambda w: [{}], ("deposit",)),
    "/v1/txs": Listing("log_index", True, lambda w: [
        {}, {"contract": "evidence"}, {"method": "amend"},
        {"sender": w.depositor.public_key.hex()},
        {"contract": "evidence", "method": "deposit", "sender": w.depositor.public_key.hex()},
    ], ("deposit", "amend", "member")),
    "/v1/apps/evidence/deposits": Listing("index", True, lambda w: [
        {}, {"digest": w.shared_digest.hex()}], ("deposit", "shared")),
    "/v1/apps/evidence/amendments": Listing("index", True, lambda w: [
        {"of": str(w.amended)}], ("amend", "deposit")),
    "/v1/apps/evidence/awaiting": Listing("index", True, lambda w: [
        {"signer": w.depositor.public_key.hex()}, {"org": w.org}], ("cosigned", "deposit")),
    "/v1/apps/members/orgs": Listing("org", False, lambda w: [{}], ("member",)),
    "/v1/apps/members/members": Listing("key", False, lambda w: [{"org": w.org}],
                                        ("member",)),
    "/v1/apps/gov/proposals": Listing("id", True, lambda w: [{}], ("proposal",)),
    "/v1/apps/invoice/invoices": Listing("number", True, lambda w: [
        {"issuer": w.issuer.public_key.hex()}], ("invoice",)),
    # Certificate ids grow: a certificate issued during a walk of an id-ordered list
    # lands after the cursor every time, so these are walked while deposits commit
    # (their items come from the certificates issued at setup).
    "/v1/apps/scf/issued": Listing("id", False, lambda w: [
        {"core": w.core.public_key.hex()}], ("deposit",)),
    "/v1/apps/scf/held": Listing("id", False, lambda w: [
        {"member": w.core.public_key.hex()}], ("deposit",)),
    "/v1/apps/scf/incoming": Listing("id", False, lambda w: [
        {"member": w.supplier.public_key.hex()}], ("deposit",)),
    "/v1/apps/scf/tree": Listing("id", False, lambda w: [
        {"id": str(w.first_certificate)}], ("deposit",)),
    # Nothing financed or overdue here: walked empty (tests/test_scf*.py fill them).
    "/v1/apps/scf/financed": Listing("id", False, lambda w: [
        {"funder": w.funder.public_key.hex()}], ("deposit",)),
    "/v1/apps/scf/overdue": Listing("id", False, lambda w: [{}], ("deposit",)),
    "/v1/apps/scf/due": Listing("id", False, lambda w: [
        {"core": w.core.public_key.hex()}], ("deposit",)),
}


def paged_operations(document: dict[str, Any]) -> list[str]:
    """The GET paths whose 200 answer is a Page: an object of `items` (an array) and
    `next`."""
    components = document["components"]["schemas"]

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = components[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    found = []
    for path, operations in document["paths"].items():
        ok = operations.get("get", {}).get("responses", {}).get("200")
        if ok is None:
            continue
        for content in ok.get("content", {}).values():
            schema = resolve(content.get("schema", {}))
            properties = schema.get("properties", {})
            if "items" in properties and "next" in properties and \
                    resolve(properties["items"]).get("type") == "array":
                found.append(path)
    return sorted(found)


# --- the node, filled ----------------------------------------------------------------------

SETUP_ROUNDS = 12


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    with running_node(tmp_path_factory.mktemp("paging"), "paging-net") as running:
        yield running


@pytest.fixture(scope="module")
def world(node: RunningNode) -> Iterator[World]:
    status = httpx.get(f"{node.url}/v1/status", timeout=60).json()
    orgs = [o.directory.name for o in org_dirs(node.net)]
    assert len(orgs) == 1, orgs
    regulator = SigningKey(sha256(b"paging: the regulator"))
    with httpx.Client(base_url=node.url, timeout=60,
                      auth=MemberSignatures(regulator)) as http:
        w = World(node, http, bytes.fromhex(status["chain_id"]),
                  read_key(node.net / "client.key").key, read_key(node.net / "admin.key").key,
                  orgs[0], shared_digest=sha256(b"paging: the shared digest"))
        try:
            org = next(o for o in org_dirs(node.net) if o.directory.name == w.org)
            cert = issue_member(org, "regulator", regulator.public_key, (Role.REGULATOR,),
                                int(time.time() * 1000))
            w.submit([signed_now(w.admin, w.chain_id, "members", "enrol", {"cert": cert})])
            first = w.submit([w.deposit()])[0]
            w.amended = first["log_index"]
            w.start_invoicing()
            w.start_financing()
            for _ in range(SETUP_ROUNDS):
                w.submit([w.certificate()])
            w.fill_financing(SETUP_ROUNDS)
            kinds = tuple(sorted({kind for listing in LISTS.values() for kind in listing.adds}))
            for _ in range(SETUP_ROUNDS):
                w.round(kinds)
            yield w
        finally:
            w.close()


@pytest.fixture(scope="module")
def document(node: RunningNode) -> dict[str, Any]:
    served: dict[str, Any] = httpx.get(f"{node.url}/v1/openapi.json", timeout=30).json()
    return served


# --- the committer -------------------------------------------------------------------------


class Committer:
    """A background thread that commits a round of transactions each time it is asked,
    and answers when they are committed (or with the exception that stopped them)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.asks: queue.Queue[tuple[str, ...] | None] = queue.Queue()
        self.answers: queue.Queue[BaseException | None] = queue.Queue()
        self.rounds = 0
        self.thread = threading.Thread(target=self._run, name="committer", daemon=True)

    def _run(self) -> None:
        while (kinds := self.asks.get()) is not None:
            try:
                self.world.round(kinds)
                self.rounds += 1
                self.answers.put(None)
            except BaseException as exc:  # handed to the walker, which raises it
                self.answers.put(exc)

    def commit(self, kinds: tuple[str, ...]) -> None:
        self.asks.put(kinds)
        failure = self.answers.get(timeout=COMMIT_WAIT_S)
        if failure is not None:
            raise failure

    def __enter__(self) -> Committer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.asks.put(None)
        self.thread.join(timeout=COMMIT_WAIT_S)
        assert not self.thread.is_alive(), "the committer did not stop"


# --- walking -------------------------------------------------------------------------------


def fetch(http: httpx.Client, path: str, params: dict[str, str]) -> dict[str, Any]:
    answer = http.get(path, params=params)
    assert answer.status_code == 200, (path, params, answer.text)
    page: dict[str, Any] = answer.json()
    assert len(page["items"]) <= int(params.get("limit", MAX_PAGE_SIZE)), page
    return page


def everything(http: httpx.Client, path: str, params: dict[str, str]) -> list[Any]:
    """The whole list at once, with nothing committed meanwhile."""
    items: list[Any] = []
    cursor = None
    while True:
        page = fetch(http, path, {**params, "limit": str(MAX_PAGE_SIZE),
                                  **({"cursor": cursor} if cursor else {})})
        items.extend(page["items"])
        cursor = page["next"]
        if cursor is None:
            return items


@dataclass
class Walked:
    """Items walked per list (path and parameters), for the final count."""

    items: Counter[str] = field(default_factory=Counter)
    walks: Counter[str] = field(default_factory=Counter)


def walk_while_committing(world: World, committer: Committer, path: str,
                          params: dict[str, str], listing: Listing, pages: int,
                          slack: int) -> list[Any]:
    """Walk the list with a page size giving about `pages` pages (plus `slack`),
    committing a round between every two fetches; check the property; return what
    was walked."""
    before = everything(world.http, path, params)
    ids_before = [item[listing.ident] for item in before]
    limit = min(MAX_PAGE_SIZE, max(1, math.ceil(len(before) / pages) + slack))
    walked: list[Any] = []
    cursor = None
    fetches = 0
    while True:
        page = fetch(world.http, path, {**params, "limit": str(limit),
                                        **({"cursor": cursor} if cursor else {})})
        fetches += 1
        walked.extend(page["items"])
        cursor = page["next"]
        if cursor is None:
            break
        assert fetches <= len(before) + MAX_PAGES_PER_WALK, "the walk does not end"
        committer.commit(listing.adds)
    ids = [item[listing.ident] for item in walked]
    where = f"{path} {params} limit={limit}"
    duplicated = [i for i, n in Counter(ids).items() if n > 1]
    assert not duplicated, f"{where}: walked twice: {duplicated}"
    missing = set(ids_before) - set(ids)
    assert not missing, f"{where}: never walked: {sorted(missing)}"
    if listing.newest_first:
        assert ids == sorted(ids, reverse=True), f"{where}: not newest first: {ids}"
        added = set(ids) - set(ids_before)
        assert not ids_before or all(i > ids_before[0] for i in added), (
            f"{where}: {sorted(added)} added during the walk, not newer than "
            f"{ids_before[0]}")
    else:
        assert ids == sorted(ids), f"{where}: not in key order: {ids}"
    return walked


def check_walks(world: World, committer: Committer, path: str, params: dict[str, str],
                listing: Listing, counts: Walked) -> None:
    """The property, for page sizes Hypothesis draws (as a number of pages for the
    list's size, plus a slack, so a walk stays bounded as the list grows)."""
    key = f"{path}?{'&'.join(f'{k}={v}' for k, v in sorted(params.items()))}"

    @settings(max_examples=EXAMPLES_PER_WALK, deadline=None, derandomize=True,
              database=None, suppress_health_check=list(HealthCheck))
    @given(pages=st.integers(2, MAX_PAGES_PER_WALK), slack=st.integers(0, 2))
    def walk(pages: int, slack: int) -> None:
        walked = walk_while_committing(world, committer, path, params, listing, pages, slack)
        counts.items[key] += len(walked)
        counts.walks[key] += 1

    walk()


def test_every_paged_operation_has_a_data_generator(document: dict[str, Any]) -> None:
    paged = paged_operations(document)
    assert {"/v1/blocks", "/v1/txs", "/v1/apps/evidence/deposits",
            "/v1/apps/evidence/amendments"} <= set(paged), paged
    without = [path for path in paged if path not in LISTS]
    assert not without, (
        f"paged operation(s) {without} in the served document have no data generator: "
        "add a Listing to LISTS in tests/test_paging.py (how to fill the list, what "
        "names an item, its order)")


def test_walking_every_list_while_committing_gives_each_item_once(
        world: World, document: dict[str, Any]) -> None:
    paged = paged_operations(document)
    counts = Walked()
    with Committer(world) as committer:
        for path in paged:
            listing = LISTS.get(path)
            if listing is None:
                pytest.fail(f"paged operation {path} has no data generator in LISTS")
            for params in listing.walks(world):

                check_walks(world, committer, path, params, listing, counts)
        rounds = committer.rounds
    print("\nitems walked per list (walks):")
    for key in sorted(counts.items):
        print(f"  {key}: {counts.items[key]} ({counts.walks[key]} walks)")
    print(f"  commit rounds during the walks: {rounds}")
    empty = [key for key, n in counts.items.items() if n == 0]
    assert not empty, f"lists walked without an item: {empty}"
    walked_paths = {key.split("?", 1)[0] for key in counts.items}
    assert walked_paths == set(paged)
    assert rounds > 0


def test_a_cursor_from_another_list_position_is_refused_or_served_not_500(
        world: World, document: dict[str, Any]) -> None:
    """Cursors are opaque: a forged one is a 400 or a page, never a 5xx."""
    for path in paged_operations(document):
        listing = LISTS[path]
        params = listing.walks(world)[0]
        for cursor in ("0", "x", "-1", "9" * 19, "AAAA", "%00"):
            answer = world.http.get(path, params={**params, "cursor": cursor})
            assert answer.status_code in (200, 400), (path, cursor, answer.text)


def test_a_prefix_ending_in_0xff_pages_its_own_keys_only(tmp_path: Path) -> None:
    """A member key or an id in a prefix may end in 0xff: the page stops at the first
    key past the prefix, not at a wrong bound (found by the OpenAPI fuzzer on scf.tree)."""
    from tests.helpers import genesis
    from tidechain.storage.store import Store

    store = Store(tmp_path / "s.db")
    keys = [b"scf/r/\x00\xff", b"scf/r/\x00\xff\x01", b"scf/r/\x00\xff\xff\x02", b"scf/r/\x01"]
    store.init_genesis(genesis(), {k: b"v" for k in keys})
    assert [k for k, _ in store.state_page(b"scf/r/\x00\xff", None, 10)] == keys[:3]
    assert [k for k, _ in store.state_range(b"scf/r/\x00\xff", 10)] == keys[:3]
    store.close()
