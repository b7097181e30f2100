"""The built-in applications: one line each (ADR 0013).

Adding an application is its folder under `contracts/` and one line in `BUILT_IN`.
The API, the OpenAPI document, the SDK, the CLI's generic verbs and state sync serve
whatever this list holds; none of them names an application."""

from __future__ import annotations

from collections.abc import Sequence

from tidechain.ledger.application import Application
from tidechain.ledger.runtime import Registry


def built_in() -> tuple[Application, ...]:
    # Imported here: `members` needs cryptography's x509, which loads `socket`; clients
    # that build evidence transactions (and the offline verifier) import this package.
    from tidechain.contracts import evidence, governance, invoice, members

    return (
        members.APP,
        evidence.APP,
        governance.APP,
        invoice.APP,
    )


def registry(extra: Sequence[Application] = ()) -> Registry:
    """The built-in applications (and `extra` ones, e.g. a test's), with the members
    contract's permission check as the authoriser."""
    from tidechain.contracts import members

    return Registry(applications=[*built_in(), *extra], authorize=members.authorize)
