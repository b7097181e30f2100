"""The evidence application's read-only queries over the committed head."""

from __future__ import annotations

from typing import Annotated

import msgspec

from tidechain.contracts.evidence.contract import (
    AMENDS_INDEX,
    DIGEST_INDEX,
    NAME,
    get_deposit,
)
from tidechain.core.errors import NotFound
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
    """A deposit is about its depositor."""
    return Audience(frozenset({bytes.fromhex(deposit.depositor)}))

Hex32 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$",
                                    description="32 bytes as 64 lowercase hex digits")]
Index = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1, description="a log index")]


class Deposit(msgspec.Struct, frozen=True):
    """A deposit: identified by the log index of the transaction that made it."""

    index: int
    digest: str
    meta: dict[str, str]
    depositor: str
    height: int
    time: int
    tx: str
    amends: int | None


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
    return Deposit(index=record["index"], digest=record["digest"].hex(), meta=record["meta"],
                   depositor=record["depositor"].hex(), height=record["height"],
                   time=record["time"], tx=record["tx"].hex(), amends=record["amends"])


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


QUERIES = {
    "deposit": Query(deposit, "one deposit by its log index, with its amendments",
                     DepositDetail, DepositParams,
                     roles=READERS, audience=depositor_audience),
    "deposits": Query(deposits, "deposits, newest first; of one digest with `digest`",
                      Deposit, DepositsParams, roles=READERS, paged=True,
                      audience=depositor_audience),
    "amendments": Query(amendments, "the deposits that amend deposit `of`, newest first",
                        Deposit, AmendmentsParams, roles=READERS, paged=True,
                        audience=depositor_audience),
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
