"""The read-only queries the API serves from a node's committed chain: transactions,
entries, blocks, receipts and proofs, search, and the view (`view`) every application's
own queries read (contracts/*/queries.py), and the node's status. A plain object over
the storage reader and the node core (`Node.views`): the chain at its head, the
mempool, the peers' claimed heads. Nothing here changes state or talks to peers."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from tidechain.contracts import cert_expiry, governance, members
from tidechain.core import cbor, merkle
from tidechain.core.errors import NotFound, Rejected, TxRejected, invariant
from tidechain.core.hexcodec import to_json
from tidechain.core.limits import MAX_PAGE_SIZE, MAX_QUERY_RESULTS, MAX_TX_SCAN
from tidechain.core.proofset import format_proof_set
from tidechain.core.receipt import Receipt, format_receipt
from tidechain.core.timefmt import iso_utc
from tidechain.core.trust import trust_text_of_keys
from tidechain.ledger import validators as validator_sets
from tidechain.ledger.access import (
    ANONYMOUS,
    Audience,
    Reader,
    entry_refusal,
    entry_visible,
    refusal,
)
from tidechain.ledger.application import (
    HeadView,
    Page,
    PageRequest,
    log_cursor,
    parse_log_cursor,
)
from tidechain.ledger.chain import Chain
from tidechain.ledger.runtime import NAMESPACE_SEPARATOR, namespaced
from tidechain.ledger.types import Event, Genesis, LogEntry, SignedTx
from tidechain.node.core import NodeCore
from tidechain.node.mempool import Mempool
from tidechain.storage.protocol import StorageReader

MAX_MEMBERS_SCANNED = 10_000
"""Member records the node's own inventories (certificate expiry, the admins a dry run
counts) read at most (a consortium has hundreds)."""


class ChainQueries:
    """Queries against the committed head."""

    def __init__(self, core: NodeCore, store: StorageReader,
                 cert_warn_days: int = cert_expiry.DEFAULT_WARN_DAYS) -> None:
        self.core = core
        self.store = store
        self.genesis: Genesis = core.genesis
        self.cert_warn_days = cert_warn_days
        # The certificates that count, read once per head (block hash) they belong to.
        self._certificates: tuple[bytes, tuple[cert_expiry.Certificate, ...], bool] | None = None
        # The validator keys' history (status, trust export), computed once per head.
        self._validator_keys: tuple[bytes, list[dict[str, Any]]] | None = None

    @property
    def chain(self) -> Chain:
        return self.core.chain

    @property
    def mempool(self) -> Mempool:
        return self.core.mempool

    @property
    def _checkpoint(self) -> str | None:
        return self.core.checkpoint

    def checkpoint(self) -> str:
        """The latest quorum-signed checkpoint."""
        if self._checkpoint is None:
            raise NotFound("no checkpoint yet: nothing has been committed")
        return self._checkpoint

    def _scan_members(self) -> tuple[list[tuple[bytes, bytes]], bool]:
        """(public key, encoded record) of up to MAX_MEMBERS_SCANNED members, and whether
        the scan hit that bound. Members are keyed by public key (what the permission
        check reads), so selecting them by anything else scans."""
        prefix = namespaced(members.NAME, members.member_key(b""))
        scanned = self.store.state_range(prefix, MAX_MEMBERS_SCANNED)
        return ([(key[len(prefix):], raw) for key, raw in scanned],
                len(scanned) == MAX_MEMBERS_SCANNED)

    def reader(self, key: bytes | None, time_ms: int) -> Reader:
        """The reader `key` proves to be at `time_ms` (anonymous if None): its roles from
        its enrolled certificate; `Unauthenticated` if it is not a member in good
        standing (ADR 0015)."""
        if key is None:
            return ANONYMOUS
        org, roles = members.reader_standing(self.chain.state, key, time_ms)
        return Reader(key, roles, org)

    def visible(self, entry: LogEntry, reader: Reader, log_index: int) -> bool:
        """Whether `reader` may read log entry `entry`, at `log_index` (ledger/access.py)."""
        app = self.chain.registry.applications.get(entry.tx.body.contract)
        if app is None:
            return entry_visible(entry, reader, None, None)
        audience = app.entry_audience
        by_record = app.record_audience
        if by_record is not None:
            state, ok, plain = self.chain.state, entry.result.ok, audience

            def audience(method: str, args: Mapping[str, Any],
                         events: Sequence[Event]) -> Audience:
                found = by_record(state, log_index, method, args, ok)
                if found is not None:
                    return found
                return Audience() if plain is None else plain(method, args, events)

        return entry_visible(entry, reader, app.readers, audience)

    def _readable(self, log_index: int, entry_bytes: bytes, reader: Reader,
                  what: str) -> None:
        if not self.visible(LogEntry.decode(entry_bytes), reader, log_index):
            raise entry_refusal(reader, what)

    def view(self) -> HeadView:
        """The committed head as the applications' queries read it."""
        return HeadView(self.chain.state, self.chain.height, self.chain.head_time_ms,
                        self.store)

    def blocks(self, page: PageRequest) -> Page[dict[str, Any]]:
        """Blocks, highest first."""
        found = self.store.headers_page(parse_log_cursor(page.cursor), page.limit + 1)
        items = [{"height": h.height, "hash": h.block_hash.hex(), "time_ms": h.time_ms,
                  "proposer": h.proposer, "tx_count": h.tx_count, "log_size": h.log_size}
                 for h in found[:page.limit]]
        more = len(found) > page.limit
        return Page(items, log_cursor(found[page.limit - 1].height) if more else None)

    def txs(self, page: PageRequest, contract: str | None, method: str | None,
            sender: bytes | None, reader: Reader = ANONYMOUS) -> Page[dict[str, Any]]:
        """Committed transactions, newest first, those matching every filter given and
        that `reader` may read. A page reads at most MAX_TX_SCAN entries: one that
        reaches it ends early, with a `next` cursor, rather than scan the whole log for
        a rare match."""
        if reader.anonymous:
            raise refusal(reader, "the transaction list", frozenset())
        below: int | None = parse_log_cursor(page.cursor)
        items: list[dict[str, Any]] = []
        scanned = 0
        last: int | None = None
        while len(items) < page.limit and scanned < MAX_TX_SCAN:
            batch = self.store.entries_page(below, min(MAX_PAGE_SIZE, MAX_TX_SCAN - scanned))
            if not batch:
                return Page(items, None)
            for log_index, entry_bytes in batch:
                scanned += 1
                last = log_index
                entry = LogEntry.decode(entry_bytes)
                body = entry.tx.body
                if ((contract is None or body.contract == contract)
                        and (method is None or body.method == method)
                        and (sender is None or body.sender == sender)
                        and self.visible(entry, reader, log_index)):
                    items.append(describe_entry(log_index, entry_bytes))
                    if len(items) == page.limit:
                        break
            below = last
        if last is None or last == 0:
            return Page(items, None)
        return Page(items, log_cursor(last))

    def trust_text(self) -> str:
        """The trust file of every validator key that has signed, with the checkpoint
        sizes each may sign (as `tide trust export` writes it)."""
        return trust_text_of_keys(self.genesis.name, self.genesis.origin,
                                  self.validator_set_status()["keys"])

    def search(self, text: str, reader: Reader = ANONYMOUS) -> dict[str, Any]:
        """What `text` names: a height, a block hash, a transaction id, a deposited
        digest, a member key or an invoice number (each application's `find`): only
        what `reader` may read, so a search tells nothing of hidden records."""
        if reader.anonymous:
            raise refusal(reader, "search", frozenset())
        text = text.strip()
        found: list[dict[str, Any]] = []
        if text.isascii() and text.isdigit() and len(text) <= 19:
            height = int(text)
            if 0 < height <= self.chain.height:
                found.append({"kind": "block", "id": text, "path": f"/v1/block/{height}"})
        if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
            value = bytes.fromhex(text)
            at = self.store.block_by_hash(value)
            if at is not None:
                found.append({"kind": "block", "id": str(at), "path": f"/v1/block/{at}"})
            hit = self.store.entry_by_tx(value)
            if hit is not None and self.visible(LogEntry.decode(hit[2]), reader, hit[0]):
                found.append({"kind": "transaction", "id": text.lower(),
                              "path": f"/v1/tx/{text.lower()}"})
        view = self.view()
        for name, app in sorted(self.chain.registry.applications.items()):
            # An application's finder looks into all its records: run for readers of all.
            if app.find is not None and reader.holds_any(app.readers):
                found.extend({"kind": kind, "id": ident, "path": path, "app": name}
                             for kind, ident, path in app.find(view, text))
        return {"query": text, "found": found[:MAX_QUERY_RESULTS]}

    def tx(self, tx_id: bytes, reader: Reader = ANONYMOUS) -> dict[str, Any]:
        what = f"transaction {tx_id.hex()}"
        found = self.store.entry_by_tx(tx_id)
        if found is None:
            if reader.anonymous:
                raise entry_refusal(reader, what)
            if tx_id in self.mempool:  # its id is all it tells, and the caller has that
                return {"tx_id": tx_id.hex(), "status": "pending"}
            raise entry_refusal(reader, what)
        log_index, _, entry = found
        self._readable(log_index, entry, reader, what)
        return describe_entry(log_index, entry)

    def entry(self, log_index: int, reader: Reader = ANONYMOUS) -> dict[str, Any]:
        entry = self.readable_entry(log_index, reader)
        return describe_entry(log_index, entry)

    def readable_entry(self, log_index: int, reader: Reader, what: str | None = None) -> bytes:
        """Entry `log_index` if `reader` may read it; a missing and a hidden entry are
        refused alike (as `what`, by default the entry)."""
        what = what or f"log entry {log_index}"
        if not 0 <= log_index < self.chain.frontier.size:
            raise entry_refusal(reader, what)
        _, entry = self.store.entry(log_index)
        self._readable(log_index, entry, reader, what)
        return entry

    def block(self, height: int) -> dict[str, Any]:
        stored = self.store.block(height)
        h = stored.header
        txs = [SignedTx.from_cbor(t) for t in cbor.decode(stored.txs)]
        return {
            "height": h.height,
            "hash": h.block_hash.hex(),
            "prev": h.prev_hash.hex(),
            "time_ms": h.time_ms,
            "proposer": h.proposer,
            "tx_count": h.tx_count,
            "tx_root": h.tx_root.hex(),
            "log_size": h.log_size,
            "log_root": base64.b64encode(h.log_root).decode(),
            "state_root": h.state_root.hex(),
            "validators_hash": h.validators_hash.hex(),
            "txs": [tx.tx_id.hex() for tx in txs],
            "checkpoint": stored.checkpoint,
        }

    def receipt(self, log_index: int, reader: Reader | None = None) -> str:
        """A tlog-proof@v1 receipt of entry `log_index` against the latest checkpoint.
        A receipt carries its entry: served to whoever may read that entry (`reader`;
        None: the node itself, handing a submitter the receipt of its own write)."""
        size = self.chain.frontier.size
        if reader is not None:
            entry = self.readable_entry(log_index, reader)
        elif not 0 <= log_index < size:
            raise NotFound(f"no log entry at index {log_index} (log size {size})")
        else:
            _, entry = self.store.entry(log_index)
        proof = merkle.inclusion_proof(self.store, log_index, size)
        return format_receipt(Receipt(log_index, tuple(proof), self.checkpoint(), entry))

    def consistency(self, old_size: int, new_size: int | None = None) -> dict[str, Any]:
        size = self.chain.frontier.size
        new = size if new_size is None else new_size
        if not 0 < old_size <= new <= size:
            raise Rejected(f"need 0 < old <= new <= {size}", code="bad_range")
        proof = merkle.consistency_proof(self.store, old_size, new)
        b64 = base64.b64encode
        return {
            "old_size": old_size,
            "new_size": new,
            "old_root": b64(merkle.root_at(self.store, old_size)).decode(),
            "new_root": b64(merkle.root_at(self.store, new)).decode(),
            "proof": [b64(h).decode() for h in proof],
        }

    def state_proof(self, key: bytes, reader: Reader = ANONYMOUS) -> dict[str, Any]:
        """The value of a state key at the head, with what a third party needs to check
        it offline: the header, its commit certificate and a state-tree proof. Read by
        the roles that read the application owning the key's namespace, and by the
        parties of the record under the key where the application says who they are
        (`Application.state_audience`)."""
        space, sep, rest = key.partition(NAMESPACE_SEPARATOR)
        namespace = space.decode("ascii", "replace") if sep else ""
        app = self.chain.registry.applications.get(namespace)
        roles = frozenset() if app is None else app.readers
        if not reader.holds_any(roles):
            audience = (None if app is None or app.state_audience is None
                        else app.state_audience(self.chain.state, rest))
            if audience is None or not audience.admits(reader):
                raise refusal(reader, f"the state of {namespace or 'this namespace'!r}",
                              roles, parties=audience is not None)
        return self._state_bundle(key)

    def proof_set(self, indexes: Sequence[int], state_key: bytes | None,
                  reader: Reader) -> str:
        """Receipts of several log entries against one checkpoint, and optionally one
        state value's proof (`core.proofset`): what proves a fact made of several
        entries, such as a deposit and the signatures that made it effective. Each part
        is served only to a reader of it."""
        # One refusal for any entry missing or hidden, naming none: which one it was
        # would tell a hidden entry from a missing one.
        entries = [(i, self.readable_entry(i, reader, "an entry of the proof set"))
                   for i in indexes]
        state = None if state_key is None else self.state_proof(state_key, reader)
        size = self.chain.frontier.size
        checkpoint = self.checkpoint()
        receipts = [format_receipt(Receipt(i, tuple(merkle.inclusion_proof(self.store, i, size)),
                                           checkpoint, entry)) for i, entry in entries]
        return format_proof_set(receipts, state)

    def _state_bundle(self, key: bytes) -> dict[str, Any]:
        head = self.store.head()
        if head is None:
            raise NotFound("no block committed yet: the state is empty")
        invariant(head.header == self.chain.head, "store head and chain head differ")
        value = self.chain.state.get(key)
        b64 = base64.b64encode
        return {
            "key": key.hex(),
            "value": None if value is None else value.hex(),
            "height": head.header.height,
            "header": b64(head.header.encode()).decode(),
            "certificate": b64(head.certificate).decode(),
            "proof": b64(self.chain.state.prove(key).to_bytes()).decode(),
        }

    def contracts(self) -> list[dict[str, Any]]:
        """Every contract method with the roles that may call it."""
        return self.chain.registry.describe()


    # --- the node's status --------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        return {
            "network": self.genesis.name,
            "chain_id": self.chain.chain_id.hex(),
            "origin": self.genesis.origin,
            "node": self.core.signer.name,
            "height": self.chain.height,
            "block_hash": self.chain.head_hash.hex(),
            "block_time_ms": self.chain.head_time_ms,
            "log_size": self.chain.frontier.size,
            "log_root": base64.b64encode(self.chain.frontier.root()).decode(),
            "state_root": self.chain.state.root().hex(),
            "mempool": {"transactions": len(self.mempool), "bytes": self.mempool.size_bytes,
                        "capacity": self.mempool.max_txs},
            "validators": [v.name for v in self.core.validators.validators],
            "quorum": self.core.validators.quorum,
            "validator_set": self.validator_set_status(),
            "sync": self.core.sync_status(),
            "consensus": {"height": self.core.replica.height, "round": self.core.replica.round},
            "certificates": self.certificates_status(),
        }

    def certificate_report(self, now_ms: int | None = None) -> cert_expiry.ExpiryReport:
        """The certificates that end within `cert_warn_days` days, or have ended, judged
        at the later of `now_ms` (default: the node's clock at its last tick) and the
        head's block time: the time admission judges transactions by."""
        at_ms = max(self.core.clock_ms if now_ms is None else now_ms, self.chain.head_time_ms)
        _, certificates, _ = self._certificate_inventory()
        return cert_expiry.expiring(certificates, at_ms, self.cert_warn_days)

    def certificates_status(self, now_ms: int | None = None) -> dict[str, Any]:
        """`certificates` of the status: counts and the soonest few, by name."""
        report = self.certificate_report(now_ms)
        return {
            "warn_days": report.warn_days,
            "at_ms": report.at_ms,
            "checked": report.checked,
            "expired": report.expired,
            "expiring": report.expiring,
            "soonest": [certificate_json(c, report.at_ms) for c in report.soonest()],
            "truncated": self._certificate_inventory()[2],
        }

    def _certificate_inventory(self) -> tuple[bytes, tuple[cert_expiry.Certificate, ...], bool]:
        """(head hash, certificates, whether the member scan hit its bound), cached
        per head: the members state changes only when a block commits."""
        head = self.chain.head_hash
        if self._certificates is None or self._certificates[0] != head:
            scanned, truncated = self._scan_members()
            certificates = cert_expiry.inventory(self.chain.state, scanned)
            self._certificates = (head, certificates, truncated)
        return self._certificates

    # --- governance ---------------------------------------------------------------------
    def gov_dry_run(self, tx: SignedTx, now_ms: int) -> dict[str, Any]:
        """Evaluate a signed `gov.propose` against the committed head, without
        submitting it: what would change if it passed and applied now, or why it
        would be refused. The proposer must be allowed to propose (403 otherwise)."""
        if (tx.body.contract, tx.body.method) != (governance.NAME, "propose"):
            raise TxRejected("a dry run takes a signed gov.propose", code="bad_argument")
        if tx.body.chain_id != self.chain.chain_id:
            raise TxRejected("transaction is for another chain", code="wrong_chain")
        tx.verify_signature()
        time_ms = max(now_ms, self.chain.head_time_ms + 1)
        self.chain.check_permission(tx, time_ms)
        return governance.dry_run(
            self.chain.state, tx.body.sender, tx.body.args, self.chain.height + 1, time_ms,
            admins=self._admin_keys(), validators=[v.name for v in self.core.validators.validators],
            live=self._live_validators(), software=self.chain.registry.versions())

    def _admin_keys(self) -> list[bytes]:
        """Keys of members holding the admin role (a bounded scan of member records)."""
        scanned, _ = self._scan_members()
        return [public_key for public_key, raw in scanned
                if "admin" in members.decode_member(raw)["roles"]]

    def validator_set_status(self) -> dict[str, Any]:
        """The set signing the next block (with each validator's org and address), and
        every key that has signed, with the heights and checkpoint sizes it signed
        for: what `tide trust export` writes as `sizes=` ranges (ADR 0011)."""
        head = self.chain.head_hash
        if self._validator_keys is None or self._validator_keys[0] != head:
            self._validator_keys = (head, self._key_history())
        records = validator_sets.current_set(self.chain.state, self.genesis)
        changes = validator_sets.change_heights(self.chain.state)
        return {"since_height": changes[-1] if changes else 1,
                "validators": [{"name": r.name, "key": r.public_key.hex(), "org": r.org,
                                "address": r.address, "tls": r.tls_fingerprint.hex()}
                               for r in records],
                "keys": self._validator_keys[1]}

    def _key_history(self) -> list[dict[str, Any]]:
        """Each key's heights, and the checkpoint sizes they map to: a key first
        signing block a covers sizes after block a - 1's (a non-empty block's log
        grows), up to block b's size when b was its last block."""
        out = []
        for span in validator_sets.key_spans(self.chain.state, self.genesis):
            first_size = 0 if span.first == 1 else self._log_size_at(span.first - 1) + 1
            last_size = None if span.last is None else self._log_size_at(span.last)
            out.append({"name": span.name, "key": span.public_key.hex(),
                        "heights": [span.first, span.last], "sizes": [first_size, last_size]})
        return out

    def _log_size_at(self, height: int) -> int:
        if height >= self.chain.height:
            return self.chain.frontier.size
        return self.store.block(height).header.log_size

    def _live_validators(self) -> list[str]:
        """This node, and the peers whose claimed head is within a block of ours."""
        return [self.core.signer.name, *(name for name, height in self.core.peer_heads.items()
                                    if height >= self.chain.height - 1)]


def certificate_json(certificate: cert_expiry.Certificate, at_ms: int) -> dict[str, Any]:
    """A certificate of an expiry report, as the status shows it."""
    return {
        "kind": certificate.kind,
        "org": certificate.org,
        "name": certificate.name,
        "serial": certificate.serial,
        "id": certificate.ident.hex(),
        "not_after": iso_utc(certificate.not_after_ms),
        "not_after_ms": certificate.not_after_ms,
        "days_left": certificate.days_left(at_ms),
    }


def describe_entry(log_index: int, entry_bytes: bytes) -> dict[str, Any]:
    entry = LogEntry.decode(entry_bytes)
    return {
        "tx_id": entry.tx.tx_id.hex(),
        "status": "committed",
        "log_index": log_index,
        "height": entry.height,
        "time_ms": entry.time_ms,
        "sender": entry.tx.body.sender.hex(),
        "contract": entry.tx.body.contract,
        "method": entry.tx.body.method,
        "args": to_json(entry.tx.body.args),
        "result": to_json(entry.result.to_cbor()),
        "entry": base64.b64encode(entry_bytes).decode(),
    }
