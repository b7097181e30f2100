"""tidechain's Python SDK and offline verifier.

    from tidechain.client import Client, verify_deposit_receipt

`Client` talks to a node's REST API (httpx, synchronous); `verify_deposit_receipt`
checks a receipt against a trust file with no network at all; `deposit_tx` and
`amend_tx` build signed transactions for callers that submit them their own way.

The SDK names are loaded on first use, so that a verifier importing only the offline
parts never loads an HTTP client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tidechain.client.txbuilder import DEFAULT_TTL_MS, amend_tx, deposit_tx, hash_file
from tidechain.client.verify import VerifiedDeposit, load_trust, verify_deposit_receipt

if TYPE_CHECKING:
    from tidechain.client.sdk import (
        CheckedRoot,
        Client,
        ConsistencyReport,
        DepositOutcome,
        NodeUnreachable,
    )

_SDK_NAMES = frozenset(
    {"CheckedRoot", "Client", "ConsistencyReport", "DepositOutcome", "NodeUnreachable"}
)

__all__ = [
    "DEFAULT_TTL_MS",
    "CheckedRoot",
    "Client",
    "ConsistencyReport",
    "DepositOutcome",
    "NodeUnreachable",
    "VerifiedDeposit",
    "amend_tx",
    "deposit_tx",
    "hash_file",
    "load_trust",
    "verify_deposit_receipt",
]


def __getattr__(name: str) -> Any:
    if name in _SDK_NAMES:
        return getattr(importlib.import_module("tidechain.client.sdk"), name)
    raise AttributeError(f"module 'tidechain.client' has no attribute {name!r}")
