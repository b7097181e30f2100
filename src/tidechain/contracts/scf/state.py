"""Where the supply-chain finance contract keeps things (namespace `scf`), and reading
it back. Integers in keys are 8-byte big-endian, keys are 32-byte member keys.

* `n`                          the next certificate id
* `c/<id>`                     a certificate record (see `contract._certificate`)
* `h/<holder><id>`             a live certificate `holder` holds (one marker per holder)
* `p/<recipient><id>`          a transfer awaiting `recipient`'s acceptance
* `i/<core><id>`               a certificate the core enterprise issued (roots)
* `r/<root><id>`               every certificate under a root, the root included
* `f/<funder><id>`             a certificate `funder` financed
* `m/<maturity><id>`           a live certificate by maturity (ms): the overdue ones are
                               the first, read without a scan
* `line/<core>`                the core enterprise's credit line: {limit, outstanding,
                               funder}; certificates outstanding never exceed `limit`
* `tier/<core><tier, 1 byte>`  face value outstanding at that tier
* `fin/<funder>`               {count, face, price}: what a funder financed
* `inv/<invoice number>`       the face value an invoice backs (never beyond its total)

All of it is world state: part of the state root and provable. The markers are kept by
the same transaction that changes the certificate, so every list is exact at every
height and read in key order without a scan.
"""

from __future__ import annotations

from typing import Any

from tidechain.core import cbor
from tidechain.ledger.runtime import StateReader, namespaced, stored_map

NAME = "scf"
DAY_MS = 86_400_000
NEXT_ID = b"n"

# Certificate statuses, as stored. `pending` awaits its recipient; `frozen` awaits a
# funder's answer; `consumed` was split; `refused` and `lapsed` were never accepted;
# `settled` was paid at maturity.
PENDING, ACTIVE, FROZEN = "pending", "active", "frozen"
CONSUMED, REFUSED, LAPSED, SETTLED = "consumed", "refused", "lapsed", "settled"
LIVE = (PENDING, ACTIVE, FROZEN)
"""The statuses of a certificate that still has a holder and a face value to pay."""


def u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def cert_key(cert_id: int) -> bytes:
    return b"c/" + u64(cert_id)


def held_key(holder: bytes, cert_id: int) -> bytes:
    return b"h/" + holder + u64(cert_id)


def pending_key(recipient: bytes, cert_id: int) -> bytes:
    return b"p/" + recipient + u64(cert_id)


def issued_key(core: bytes, cert_id: int) -> bytes:
    return b"i/" + core + u64(cert_id)


def root_key(root: int, cert_id: int) -> bytes:
    return b"r/" + u64(root) + u64(cert_id)


def financed_key(funder: bytes, cert_id: int) -> bytes:
    return b"f/" + funder + u64(cert_id)


def maturity_key(maturity_ms: int, cert_id: int) -> bytes:
    return b"m/" + u64(maturity_ms) + u64(cert_id)


def line_key(core: bytes) -> bytes:
    return b"line/" + core


def tier_key(core: bytes, tier: int) -> bytes:
    return b"tier/" + core + bytes([tier])


def funder_stats_key(funder: bytes) -> bytes:
    return b"fin/" + funder


def invoice_use_key(number: str) -> bytes:
    return b"inv/" + number.encode("ascii")


def _get(state: StateReader, key: bytes) -> dict[str, Any] | None:
    raw = state.get(namespaced(NAME, key))
    return None if raw is None else stored_map(raw, "scf record")


def get_certificate(state: StateReader, cert_id: int) -> dict[str, Any] | None:
    return _get(state, cert_key(cert_id)) if 0 <= cert_id < 2**63 else None


def get_line(state: StateReader, core: bytes) -> dict[str, Any] | None:
    return _get(state, line_key(core))


def tier_outstanding(state: StateReader, core: bytes, tier: int) -> int:
    raw = state.get(namespaced(NAME, tier_key(core, tier)))
    return 0 if raw is None else int(cbor.decode(raw))


def funder_stats(state: StateReader, funder: bytes) -> dict[str, Any]:
    return _get(state, funder_stats_key(funder)) or {"count": 0, "face": 0, "price": 0}


def invoice_backed(state: StateReader, number: str) -> int:
    raw = state.get(namespaced(NAME, invoice_use_key(number)))
    return 0 if raw is None else int(cbor.decode(raw))


def effective(record: dict[str, Any], now_ms: int) -> tuple[str, bytes]:
    """(status, holder) of a certificate at `now_ms`. A transfer still unaccepted at
    maturity has gone back to its sender (an issued root back to its issuer: lapsed);
    the stored record changes only when someone acts on it (acceptance is refused
    past maturity, and settlement pays the sender)."""
    status, holder = record["status"], bytes(record["holder"])
    if status == PENDING and now_ms >= record["maturity"]:
        return (LAPSED if record["parent"] is None else ACTIVE), holder
    return status, holder


def is_overdue(record: dict[str, Any], now_ms: int) -> bool:
    """Past maturity and still unpaid: visible to its holder, funders and regulator."""
    status, _ = effective(record, now_ms)
    return status in (ACTIVE, FROZEN) and now_ms > record["maturity"]
