"""The evidence application's read-only queries over the committed head."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from tidechain.contracts.evidence import cosign
from tidechain.contracts.evidence.contract import (
    AMENDS_INDEX,
    DIGEST_INDEX,
    NAME,
    SIGNER_INDEX,
    SIGNER_ORG_INDEX,
    get_deposit,
)
from tidechain.core.errors import NotFound, Rejected
from tidechain.core.hexcodec import parse_hex
from tidechain.identity.roles import Role
from tidechain.ledger.access import Audience
from tidechain.ledger.application import (
    ChainView,
    Page,
    PageRequest,
    Query,
    in_key_order,
    newest_first,
)
from tidechain.ledger.runtime import namespaced

READERS: frozenset[Role] = frozenset()
"""No role reads every deposit but the regulator's (ADR 0015): a deposit is the
depositor's business, read by its depositor (`depositor_audience`)."""


def depositor_audience(deposit: Deposit) -> Audience:
    """A deposit is about its depositor and, when co-signed, its named signers and those
    who signed; a public deposit (evidence v2 `publish`) is about everyone."""
    parties = {bytes.fromhex(deposit.depositor)}
    org_roles: set[tuple[str, Role]] = set()
    if deposit.cosign is not None:
        for slot in deposit.cosign.cosigners:
            if slot.key is not None:
                parties.add(bytes.fromhex(slot.key))
            elif slot.org is not None and slot.role is not None:
                org_roles.add((slot.org, Role(slot.role)))
        parties.update(bytes.fromhex(s.key) for s in deposit.cosign.signed)
    return Audience(frozenset(parties), public=deposit.public,
                    org_roles=frozenset(org_roles))

Hex32 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$",
                                    description="32 bytes as 64 lowercase hex digits")]
Index = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1, description="a log index")]


class CosignerView(msgspec.Struct, frozen=True, omit_defaults=True):
    """A named signer: a member key (hex), or an organisation and a role."""

    key: str | None = None
    org: str | None = None
    role: str | None = None


class SignatureView(msgspec.Struct, frozen=True):
    """One co-signature: which slot it filled, whose key, its transaction's log index."""

    slot: int
    key: str
    index: int
    height: int
    time: int


class Moment(msgspec.Struct, frozen=True):
    """When a co-signed deposit took effect: the k-th signature's entry and block."""

    index: int
    height: int
    time: int


class CosignTerms(msgspec.Struct, frozen=True):
    """Who must sign a co-signed deposit, how many, by when, and who has."""

    cosigners: list[CosignerView]
    threshold: int
    deadline: int
    signed: list[SignatureView]
    effective: Moment | None


class Deposit(msgspec.Struct, frozen=True):
    """A deposit: identified by the log index of the transaction that made it.
    `status` is `effective` for a plain deposit; a co-signed one is `pending` until
    `threshold` of its `cosign.cosigners` signed, then `effective`, or `lapsed` if its
    deadline passed first (as of the head block's time)."""

    index: int
    digest: str
    meta: dict[str, str]
    depositor: str
    height: int
    time: int
    tx: str
    amends: int | None
    status: str = cosign.EFFECTIVE
    public: bool = False
    cosign: CosignTerms | None = None


class DepositDetail(Deposit, frozen=True):
    """A deposit with the first page of the deposits amending it (newest first);
    `amended_by_next` continues the `amendments` query when there are more."""

    amended_by: list[int] = []
    amended_by_next: str | None = None


class DepositParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    index: Index


class DepositsParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    digest: Hex32 | None = None


class AmendmentsParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    of: Index


def _deposit(view: ChainView, index: int) -> Deposit | None:
    record = get_deposit(view.state, index)
    if record is None:
        return None
    return deposit_from_record(record, view.time_ms)


def deposit_from_record(record: dict[str, Any], now_ms: int) -> Deposit:
    """A stored record (v1, or v2 with its co-signing terms) as the API shows it, its
    status as of block time `now_ms`."""
    terms = _terms(record)
    status = (cosign.EFFECTIVE if terms is None else
              cosign.status_at(terms.threshold, len(terms.signed), terms.deadline, now_ms))
    return Deposit(index=record["index"], digest=record["digest"].hex(), meta=record["meta"],
                   depositor=record["depositor"].hex(), height=record["height"],
                   time=record["time"], tx=record["tx"].hex(), amends=record["amends"],
                   status=status, public=bool(record.get("public")), cosign=terms)


def _terms(record: dict[str, Any]) -> CosignTerms | None:
    terms = record.get("cosign")
    if terms is None:
        return None
    effective = record["effective"]
    return CosignTerms(
        cosigners=[CosignerView(key=slot["key"].hex()) if "key" in slot
                   else CosignerView(org=slot["org"], role=slot["role"])
                   for slot in terms["slots"]],
        threshold=terms["threshold"], deadline=terms["deadline"],
        signed=[SignatureView(slot=s["slot"], key=s["key"].hex(), index=s["index"],
                              height=s["height"], time=s["time"]) for s in record["signed"]],
        effective=None if effective is None else Moment(**effective))


def deposit(view: ChainView, params: DepositParams) -> DepositDetail:
    found = _deposit(view, params.index)
    if found is None:
        raise NotFound(f"no deposit at log index {params.index}")
    amended = newest_first(view, f"{NAME}/{AMENDS_INDEX}", params.index.to_bytes(8, "big"),
                           PageRequest(), lambda i: i)
    return DepositDetail(**msgspec.structs.asdict(found), amended_by=amended.items,
                         amended_by_next=amended.next)


def deposits(view: ChainView, params: DepositsParams, page: PageRequest) -> Page[Deposit]:
    """Every deposit, or every deposit of one digest, newest first."""
    if params.digest is None:
        # The records are keyed by their log index, big-endian: reverse key order is
        # newest first, with no index row written for the list.
        return in_key_order(view, namespaced(NAME, b"i"), page,
                            lambda key, raw: _deposit(view, int.from_bytes(key, "big")),
                            descending=True)
    digest = parse_hex(params.digest, 32, "digest")
    return newest_first(view, f"{NAME}/{DIGEST_INDEX}", digest, page,
                        lambda i: _deposit(view, i))


def amendments(view: ChainView, params: AmendmentsParams, page: PageRequest) -> Page[Deposit]:
    """The deposits amending deposit `of`, newest first."""
    return newest_first(view, f"{NAME}/{AMENDS_INDEX}", params.of.to_bytes(8, "big"), page,
                        lambda i: _deposit(view, i))


class AwaitingParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    signer: Hex32 | None = None
    org: Annotated[str, msgspec.Meta(min_length=1, max_length=cosign.MAX_ORG_ID_BYTES)
                   ] | None = None


def awaiting(view: ChainView, params: AwaitingParams, page: PageRequest) -> Page[Deposit]:
    """The co-signed deposits naming member key `signer`, or with a slot for
    organisation `org`, newest first: what a co-signer has to look at."""
    if (params.signer is None) == (params.org is None):
        raise Rejected("give exactly one of 'signer' (a member key) and 'org'",
                       code="bad_argument")
    if params.signer is not None:
        name, key = SIGNER_INDEX, parse_hex(params.signer, 32, "signer")
    else:
        assert params.org is not None
        name, key = SIGNER_ORG_INDEX, params.org.encode()
    return newest_first(view, f"{NAME}/{name}", key, page, lambda i: _deposit(view, i))


QUERIES = {
    "deposit": Query(deposit, "one deposit by its log index, with its amendments",
                     DepositDetail, DepositParams,
                     roles=READERS, audience=depositor_audience, public_items=True),
    "deposits": Query(deposits, "deposits, newest first; of one digest with `digest`",
                      Deposit, DepositsParams, roles=READERS, paged=True,
                      audience=depositor_audience, public_items=True),
    "amendments": Query(amendments, "the deposits that amend deposit `of`, newest first",
                        Deposit, AmendmentsParams, roles=READERS, paged=True,
                        audience=depositor_audience, public_items=True),
    "awaiting": Query(awaiting, "co-signed deposits naming a member key (`signer`) or an "
                      "organisation (`org`), newest first", Deposit, AwaitingParams,
                      roles=READERS, paged=True, audience=depositor_audience),
}


def find(view: ChainView, text: str) -> list[tuple[str, str, str]]:
    """A digest's deposits, for the API's search."""
    if len(text) != 64:
        return []
    try:
        digest = bytes.fromhex(text)
    except ValueError:
        return []
    found = view.index_page(f"{NAME}/{DIGEST_INDEX}", digest, None, 1)
    if not found:
        return []
    return [("deposit", text.lower(), f"/v1/apps/{NAME}/deposits?digest={text.lower()}")]
