"""The built-in applications: one line each (ADR 0013).

Adding an application is its folder under `contracts/` and one line in `BUILT_IN`.
The API, the OpenAPI document, the SDK, the CLI's generic verbs and state sync serve
whatever this list holds; none of them names an application."""

from __future__ import annotations

from collections.abc import Sequence

from tidechain.core.errors import ConfigError
from tidechain.ledger.application import Application
from tidechain.ledger.runtime import Registry


def built_in() -> tuple[Application, ...]:
    # Imported here: `members` needs cryptography's x509, which loads `socket`; clients
    # that build evidence transactions (and the offline verifier) import this package.
    from tidechain.contracts import evidence, governance, invoice, members, scf, trace

    return (
        members.APP,
        evidence.APP,
        governance.APP,
        invoice.APP,
        scf.APP,
        trace.APP,
    )


def registry(extra: Sequence[Application] = ()) -> Registry:
    """The built-in applications (and `extra` ones, e.g. a test's), with the members
    contract's permission check as the authoriser."""
    from tidechain.contracts import members

    return Registry(applications=[*built_in(), *extra], authorize=members.authorize)


MAX_EXTRA_APPLICATIONS = 16
"""Applications a node or the CLI loads beside the built-in ones (`applications` in
node.toml, `tide --app`): a handful, for tests and an operator's own extensions."""


def load_applications(modules: Sequence[str]) -> list[Application]:
    """The `APP` of each named module (importable, e.g. `tests.apps.notary`). Every
    validator must serve the same applications: a node without one would execute its
    calls differently and refuse the blocks that carry them (ADR 0013)."""
    import importlib

    if len(modules) > MAX_EXTRA_APPLICATIONS:
        raise ConfigError(f"at most {MAX_EXTRA_APPLICATIONS} extra applications")
    found = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"cannot import application module {name!r}: {exc}") from None
        app = getattr(module, "APP", None)
        if not isinstance(app, Application):
            raise ConfigError(f"module {name!r} has no APP (an Application)")
        found.append(app)
    return found
