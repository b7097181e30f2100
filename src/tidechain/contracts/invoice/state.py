"""Where the invoice contract keeps things (namespace `invoice`), and reading it back.

* `inv/<number>`                  the invoice record (see `contract._new_record`)
* `iss/<issuer key>`              the issuer's authorisation: tax id, name, quota,
                                  issued total, count, suspended
* `by/<issuer key><seq, 8 bytes>` the issuer's n-th invoice number (blue and red)
* `stat/<issuer key><YYYY-MM>`    {issued, issued_count, reversed, reimbursed}
* `tax/<tax id>`                  {issuers}: how many keys are authorised under that
                                  tax id (USCC, 18 characters)
* `tstat/<tax id><YYYY-MM>`       the same counters as `stat/`, summed over every
                                  issuer key of that tax id
* `rev/<number>`                  a pending reversal request on invoice `number`
                                  (the issuer's, awaiting the buyer side)
* `ask/<number>`                  a reversal the buyer side asked for, awaiting the
                                  issuer's red-letter invoice
* `aud`                           the tax authority's audit keys {keys: [...]}

All of it is world state, so part of the state root and provable. The statistics are
counters updated by the same transaction that changes the invoice, per issuer key and
per tax id: simpler to prove than a scan, exact at every height, and read in one `get`
however many keys a tax id has.
"""

from __future__ import annotations

from typing import Any

from tidechain.core.errors import InvariantViolation
from tidechain.ledger.runtime import StateReader, namespaced, stored_map

NAME = "invoice"
DAY_MS = 86_400_000
AUDITORS_KEY = b"aud"


def invoice_key(number: str) -> bytes:
    return b"inv/" + number.encode("ascii")


def issuer_key(issuer: bytes) -> bytes:
    return b"iss/" + issuer


def by_issuer_key(issuer: bytes, seq: int) -> bytes:
    return b"by/" + issuer + seq.to_bytes(8, "big")


def stat_key(issuer: bytes, period: str) -> bytes:
    return b"stat/" + issuer + period.encode("ascii")


def tax_key(tax_id: str) -> bytes:
    return b"tax/" + tax_id.encode("ascii")


def tax_stat_key(tax_id: str, period: str) -> bytes:
    return b"tstat/" + tax_id.encode("ascii") + period.encode("ascii")


def reversal_key(number: str) -> bytes:
    return b"rev/" + number.encode("ascii")


def ask_key(number: str) -> bytes:
    return b"ask/" + number.encode("ascii")


def decode_map(raw: bytes) -> dict[str, Any]:
    """A record this contract wrote: anything else is our bug, not bad input."""
    return stored_map(raw, "invoice record")


def period_of(time_ms: int) -> str:
    """The UTC calendar month `YYYY-MM` of a block time (statistics are per month).
    Integer civil-from-days arithmetic (H. Hinnant's algorithm): no clock module."""
    days = time_ms // DAY_MS + 719_468
    era = days // 146_097
    day_of_era = days - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524
                   - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    mp = (5 * day_of_year + 2) // 153
    month = mp + 3 if mp < 10 else mp - 9
    year = year_of_era + era * 400 + (1 if month <= 2 else 0)
    return f"{year:04d}-{month:02d}"


# --- queries over committed state -----------------------------------------------------


def _get(state: StateReader, key: bytes) -> dict[str, Any] | None:
    raw = state.get(namespaced(NAME, key))
    return None if raw is None else decode_map(raw)


def get_invoice(state: StateReader, number: str) -> dict[str, Any] | None:
    """The invoice record: public fields plus `sealed` (commitment, ciphertext and
    the content key wrapped to each reader; envelope.py)."""
    return _get(state, invoice_key(number))


def get_auditors(state: StateReader) -> list[bytes]:
    """The keys every new invoice must be sealed to (empty until the tax authority
    registers them)."""
    record = _get(state, AUDITORS_KEY)
    return [] if record is None else [bytes(key) for key in record["keys"]]


def get_issuer(state: StateReader, issuer: bytes) -> dict[str, Any] | None:
    return _get(state, issuer_key(issuer))


def pending_reversal(state: StateReader, number: str) -> dict[str, Any] | None:
    return _get(state, reversal_key(number))


def asked_reversal(state: StateReader, number: str) -> dict[str, Any] | None:
    return _get(state, ask_key(number))


def invoices_of_issuer(state: StateReader, issuer: bytes, start: int, limit: int) -> list[str]:
    """The issuer's invoice numbers in issue order, from its `start`-th, at most `limit`."""
    record = get_issuer(state, issuer)
    count = 0 if record is None else int(record["count"])
    numbers = []
    for seq in range(max(start, 0), min(count, max(start, 0) + max(limit, 0))):
        raw = state.get(namespaced(NAME, by_issuer_key(issuer, seq)))
        if raw is None:
            raise InvariantViolation("an issuer's invoice list has a gap")
        numbers.append(raw.decode("ascii"))
    return numbers


EMPTY_STATS = {"issued": 0, "issued_count": 0, "reversed": 0, "reimbursed": 0}


def statistics(state: StateReader, issuer: bytes, period: str) -> dict[str, int]:
    """Amounts (fen) issued, reversed by red-letter invoices, and reimbursed for the
    issuer's invoices in the UTC month `period` (`YYYY-MM`); zeros if none."""
    return _counters(_get(state, stat_key(issuer, period)))


def tax_id_statistics(state: StateReader, tax_id: str, period: str) -> dict[str, int]:
    """The same counters summed over every issuer key authorised under `tax_id` (a
    normalised USCC), kept by the contract: one read, never a scan."""
    return _counters(_get(state, tax_stat_key(tax_id, period)))


def tax_id_issuers(state: StateReader, tax_id: str) -> int:
    """How many issuer keys were ever authorised under `tax_id` (0: none)."""
    record = _get(state, tax_key(tax_id))
    return 0 if record is None else int(record["issuers"])


def _counters(record: dict[str, Any] | None) -> dict[str, int]:
    return dict(EMPTY_STATS) if record is None else {k: int(record[k]) for k in EMPTY_STATS}
