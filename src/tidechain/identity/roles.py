"""Member roles: what an enrolled member may do on chain.

A role travels in a member certificate as one organizationalUnitName (OU) attribute
per role, Hyperledger Fabric "NodeOU" style, so `openssl x509 -text` shows it. The
string values are stable: they are written into certificates and permission rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from tidechain.core.errors import Rejected


class Role(StrEnum):
    """A member's role. The value is what the certificate's OU attribute holds."""

    ADMIN = "admin"
    DEPOSITOR = "depositor"
    INVOICE_ISSUER = "invoice_issuer"
    TAX_AUTHORITY = "tax_authority"
    ENTERPRISE = "enterprise"
    FUNDER = "funder"  # a bank or other financier of receivables
    CARRIER = "carrier"
    REGULATOR = "regulator"


ROLE_NAMES: tuple[str, ...] = tuple(role.value for role in Role)


class UnknownRole(Rejected):
    """A role name that is not one of `Role`'s values."""

    code = "unknown_role"


def parse_role(name: str) -> Role:
    """The Role called `name` (exact, lower-case); UnknownRole otherwise."""
    try:
        return Role(name)
    except ValueError:
        hint = " (a bank enrols as 'funder')" if name.strip().lower() == "bank" else ""
        raise UnknownRole(
            f"unknown role {name!r}{hint}; roles are: {', '.join(ROLE_NAMES)}"
        ) from None


def parse_roles(names: Iterable[str]) -> frozenset[Role]:
    """Parse every name; a repeated name counts once. UnknownRole on the first bad one."""
    return frozenset(parse_role(name) for name in names)
