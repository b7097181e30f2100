"""Identity: organisations, their certificate authorities, members and roles.

Pure (no clock, no I/O, no randomness): the chain verifies member certificates with
these functions inside contract code, so every validator must reach the same answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tidechain.identity.roles import ROLE_NAMES, Role, UnknownRole, parse_role, parse_roles
from tidechain.identity.uscc import (
    BadUscc,
    org_code_check_char,
    uscc_check_char,
    validate_uscc,
)

if TYPE_CHECKING:
    from tidechain.identity.certs import (
        MS_PER_DAY,
        BadKeyFile,
        CertBadKey,
        CertBadRoles,
        CertError,
        CertExpired,
        CertMalformed,
        CertNotCa,
        CertNotYetValid,
        CertProfileError,
        CertRequestError,
        CertTooLarge,
        CertUntrusted,
        Member,
        OrgCa,
        days_until_expiry,
        expiry_warning,
        from_pem,
        issue_member_cert,
        make_org_ca,
        parse_org_ca,
        private_key_from_pem,
        private_key_to_pem,
        read_org_ca,
        to_pem,
        verify_member_cert,
        verify_member_cert_with_ca,
    )


def __getattr__(name: str) -> Any:
    if name in _CERTS_NAMES:
        from tidechain.identity import certs

        return getattr(certs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MS_PER_DAY",
    "ROLE_NAMES",
    "BadKeyFile",
    "BadUscc",
    "CertBadKey",
    "CertBadRoles",
    "CertError",
    "CertExpired",
    "CertMalformed",
    "CertNotCa",
    "CertNotYetValid",
    "CertProfileError",
    "CertRequestError",
    "CertTooLarge",
    "CertUntrusted",
    "Member",
    "OrgCa",
    "Role",
    "UnknownRole",
    "days_until_expiry",
    "expiry_warning",
    "from_pem",
    "issue_member_cert",
    "make_org_ca",
    "org_code_check_char",
    "parse_org_ca",
    "parse_role",
    "parse_roles",
    "private_key_from_pem",
    "private_key_to_pem",
    "read_org_ca",
    "to_pem",
    "uscc_check_char",
    "validate_uscc",
    "verify_member_cert",
    "verify_member_cert_with_ca",
]

_CERTS_NAMES = frozenset(__all__).difference(globals())
"""The names of `certs` (those in __all__ not imported above), loaded on first use:
`cryptography.x509` pulls in `email` and `socket`, which the offline verifier (which
reads genesis files and roles) must not load (tests/test_client_verify.py)."""
