"""Built-in applications. Each module defines one `Contract`; business rules live here
and nowhere else (not in the API, CLI or SDK)."""

from __future__ import annotations

from tidechain.contracts import evidence
from tidechain.ledger.runtime import Registry


def default_registry() -> Registry:
    return Registry([evidence.CONTRACT])
