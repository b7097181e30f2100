"""Each method's argument Struct (`MethodSpec.args`, ADR 0013) names exactly the
arguments the method's own checks accept: a method refuses a name outside its Struct,
and never refuses one of its Struct's names as unknown. The Literal types that restate
a rule's list are that list."""

from __future__ import annotations

import typing
from typing import Any

import msgspec
import pytest

from tests.helpers import GENESIS_TIME_MS
from tidechain.contracts import governance
from tidechain.contracts.invoice import content
from tidechain.contracts.invoice import contract as invoice_contract
from tidechain.contracts.registry import built_in
from tidechain.ledger.runtime import CallContext, MethodSpec, Overlay

UNKNOWN = "zz_not_an_argument"


class _Empty:
    def get(self, key: bytes) -> bytes | None:
        return None


METHODS = [(app.name, name, spec) for app in built_in() for c in app.contracts
           for name, spec in sorted(c.methods.items())]


def _refusal(app: str, spec: MethodSpec, args: dict[str, Any]) -> str:
    """What the method says about `args` on an empty state ("" if it accepted them)."""
    ctx = CallContext(contract=app, caller=bytes(32), height=1, time_ms=GENESIS_TIME_MS,
                      log_index=0, tx_id=b"", _state=Overlay(_Empty()))
    try:
        spec.fn(ctx, args)
    except Exception as exc:
        return str(exc)
    return ""


@pytest.mark.parametrize("app, name, spec", METHODS, ids=[f"{a}.{n}" for a, n, _ in METHODS])
def test_every_method_declares_exactly_the_arguments_it_takes(
        app: str, name: str, spec: MethodSpec) -> None:
    assert spec.args is not None and issubclass(spec.args, msgspec.Struct)
    fields = {f.encode_name for f in msgspec.structs.fields(spec.args)}
    declared = dict.fromkeys(fields)
    assert UNKNOWN in _refusal(app, spec, {**declared, UNKNOWN: 1})
    assert "unknown argument" not in (said := _refusal(app, spec, declared))
    assert "unknown field" not in said


def test_the_literal_types_are_the_rules_lists() -> None:
    assert set(typing.get_args(governance.Action)) == set(governance.ACTIONS)
    assert set(typing.get_args(invoice_contract.Reason)) == set(content.REASONS)
