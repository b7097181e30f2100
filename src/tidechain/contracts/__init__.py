"""Built-in applications. Each module defines one `Contract`; business rules live here
and nowhere else (not in the API, CLI or SDK)."""

from __future__ import annotations

from tidechain.ledger.runtime import Registry


def default_registry() -> Registry:
    """The built-in contracts, with the members contract as the permission check."""
    # Imported here: `members` needs cryptography's x509, which loads `socket`; clients
    # that build evidence transactions (and the offline verifier) import this package.
    from tidechain.contracts import evidence, governance, invoice, members

    return Registry([members.CONTRACT, evidence.CONTRACT, governance.CONTRACT,
                     invoice.CONTRACT], authorize=members.authorize)
