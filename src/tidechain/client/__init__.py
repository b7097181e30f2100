"""tidechain's Python SDK and offline verifier.

    from tidechain.client import Client, Session, verify_deposit_receipt

    with Client(url, trust=trust_text) as client:
        outcome = Session(client, signing_key).call("evidence", "deposit", args)

`Client` talks to a node's REST API (httpx, synchronous); `Session` is the one way a
transaction is built, signed, sent and its receipt verified (client/session.py);
`verify_deposit_receipt` checks a receipt against a trust file with no network at all;
`call_tx` and `deposit_tx` build signed transactions for callers that submit them their
own way; `files` reads and writes keys, organisation CAs and trust files.

The SDK names are loaded on first use, so that a verifier importing only the offline
parts never loads an HTTP client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tidechain.client.txbuilder import DEFAULT_TTL_MS, call_tx, deposit_tx, hash_file
from tidechain.client.verify import VerifiedDeposit, load_trust, verify_deposit_receipt

if TYPE_CHECKING:
    from tidechain.client.sdk import (
        CheckedRoot,
        Client,
        ConsistencyReport,
        DepositOutcome,
        NodeUnreachable,
    )
    from tidechain.client.session import Outcome, Session

_LAZY = {
    "CheckedRoot": "tidechain.client.sdk",
    "Client": "tidechain.client.sdk",
    "ConsistencyReport": "tidechain.client.sdk",
    "DepositOutcome": "tidechain.client.sdk",
    "NodeUnreachable": "tidechain.client.sdk",
    "Outcome": "tidechain.client.session",
    "Session": "tidechain.client.session",
}

__all__ = [
    "DEFAULT_TTL_MS",
    "CheckedRoot",
    "Client",
    "ConsistencyReport",
    "DepositOutcome",
    "NodeUnreachable",
    "Outcome",
    "Session",
    "VerifiedDeposit",
    "call_tx",
    "deposit_tx",
    "hash_file",
    "load_trust",
    "verify_deposit_receipt",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'tidechain.client' has no attribute {name!r}")
