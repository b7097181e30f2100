"""Small builders shared by tests (not fixtures: plain functions)."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Iterable
from typing import Any

import pytest

from tidechain.core.crypto import SigningKey
from tidechain.identity import Role, issue_member_cert, make_org_ca
from tidechain.ledger.types import Genesis, GenesisOrg, GenesisValidator, SignedTx, TxBody

GENESIS_TIME_MS = 1_760_000_000_000
DAY_MS = 86_400_000
TEST_ORG = "test-org"
TEST_USCC = "91350100M000100Y43"
DEPOSITOR_KEYS = range(10)
"""key(0)..key(9) are depositors of the test organisation: the keys tests sign with."""
ADMIN_KEY = 10
"""key(10) is the test organisation's admin."""


def compiled_module_required(what: str) -> None:
    """Skip the calling test module when the optional C extension was not built, or
    fail it under CI=true, where the build is required and `what` must be tested."""
    from tidechain.core import cbor

    if not cbor.NATIVE:
        why = ("tidechain.core._cbor_native is not built (no C compiler at install time?): "
               f"{what} is untested")
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


def key(n: int) -> SigningKey:
    return SigningKey(hashlib.sha256(b"test key %d" % n).digest())


def ca_seed(org: str, generation: int = 0) -> bytes:
    return hashlib.sha256(b"test ca %s %d" % (org.encode(), generation)).digest()


@functools.cache
def org_ca(org: str = TEST_ORG, generation: int = 0, uscc: str = TEST_USCC) -> bytes:
    """A test organisation's CA certificate (cached: tests stay fast)."""
    return make_org_ca(org, f"{org} Co., Ltd.", uscc, ca_seed(org, generation),
                       GENESIS_TIME_MS - DAY_MS, GENESIS_TIME_MS + 3650 * DAY_MS,
                       1000 + generation)


@functools.cache
def member_cert(n: int, roles: tuple[Role, ...], org: str = TEST_ORG, generation: int = 0,
                not_after_ms: int = GENESIS_TIME_MS + 365 * DAY_MS, serial: int = 0) -> bytes:
    """key(n)'s certificate with `roles` from `org`'s CA (cached)."""
    return issue_member_cert(org_ca(org, generation), ca_seed(org, generation), f"member {n}",
                             key(n).public_key, roles, GENESIS_TIME_MS - DAY_MS, not_after_ms,
                             serial or 1_000_000 + n)


def founding_org(extra: Iterable[tuple[int, tuple[Role, ...]]] = ()) -> GenesisOrg:
    """The test organisation: key(0..9) depositors, key(10) admin, plus `extra`."""
    members: list[tuple[int, tuple[Role, ...]]] = [(n, (Role.DEPOSITOR,)) for n in DEPOSITOR_KEYS]
    members += [(ADMIN_KEY, (Role.ADMIN,)), *extra]
    return GenesisOrg(org_ca(), tuple(member_cert(n, roles) for n, roles in members))


@functools.cache
def genesis(validators: int = 1, name: str = "test-net") -> Genesis:
    return Genesis(
        name,
        GENESIS_TIME_MS,
        tuple(GenesisValidator(f"{name}/node{i}", key(1000 + i).public_key)
              for i in range(validators)),
        (founding_org(),),
    )


def tx(
    g: Genesis, signer: SigningKey, method: str = "deposit", args: dict[str, Any] | None = None,
    *, nonce: int = 0, expires_ms: int | None = None, contract: str = "evidence",
) -> SignedTx:
    if args is None:
        args = {"digest": hashlib.sha256(b"doc %d" % nonce).digest(), "meta": {"n": str(nonce)}}
    body = TxBody(
        chain_id=g.chain_id,
        sender=signer.public_key,
        nonce=nonce.to_bytes(16, "big"),
        expires_ms=expires_ms if expires_ms is not None else GENESIS_TIME_MS + 3_600_000,
        contract=contract,
        method=method,
        args=args,
    )
    return SignedTx.create(body, signer)


_signed_nonces = iter(range(1, 10**9))


def signed_now(key: SigningKey, chain_id: bytes, contract: str, method: str,
               args: dict[str, Any]) -> SignedTx:
    """A call signed for a live node: the wall clock, a unique nonce (tests that
    craft transactions for a running node; the SDK's session is the product path)."""
    import os
    import time

    from tidechain.client.txbuilder import call_tx

    nonce = next(_signed_nonces).to_bytes(8, "big") + os.urandom(8)
    return call_tx(key, chain_id, contract, method, args,
                   now_ms=int(time.time() * 1000), nonce=nonce)
