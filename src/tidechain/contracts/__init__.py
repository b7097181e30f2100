"""Built-in applications, one folder each (ADR 0013). Business rules live here and
nowhere else (not in the API, CLI or SDK); `registry.py` lists them."""

from __future__ import annotations

from collections.abc import Sequence

from tidechain.ledger.application import Application
from tidechain.ledger.runtime import Registry


def default_registry(extra: Sequence[Application] = ()) -> Registry:
    """The built-in applications (plus `extra`), with the members contract as the
    permission check."""
    from tidechain.contracts.registry import registry

    return registry(extra)
