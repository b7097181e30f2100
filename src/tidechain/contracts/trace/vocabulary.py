"""One spelling per CBV 2.0 vocabulary word.

EPCIS 2.0 lets a business step be written `shipping`, `urn:epcglobal:cbv:bizstep:shipping`,
`https://ref.gs1.org/cbv/BizStep-shipping` or `cbv:BizStep-shipping` (the EPCIS context's
own prefix); they are the same value. (A document re-declaring another prefix for the
CBV is hashed right but filed under its compact form: queries by bizStep then scan.) The contract
files lookup keys, and queries and traces compare, under the bare word for the standard
vocabulary, and under the value itself (trimmed) for anything else (a user vocabulary).
"""

from __future__ import annotations

from typing import Final

from .event_hash import CBV, CBV_URN_TYPES

__all__ = ["cbv_word"]

_WEB_PREFIXES: Final = {kind: CBV + prefix for kind, prefix in CBV_URN_TYPES.items()}


def cbv_word(value: str, kind: str) -> str:
    """The bare CBV word of `value` in vocabulary `kind` (`bizstep`, `disp`, `btt`,
    `sdt`, `er`), or `value` trimmed when it is not spelled as that vocabulary."""
    value = value.strip()
    urn = f"urn:epcglobal:cbv:{kind}:"
    if value.startswith(urn) and len(value) > len(urn):
        return value[len(urn):]
    web = _WEB_PREFIXES[kind]
    if value.startswith(web) and len(value) > len(web):
        return value[len(web):]
    for other in ("http://" + web[len("https://"):],  # the same URI over http
                  "cbv:" + web[len(CBV):]):  # the EPCIS context's own prefix: cbv:BizStep-x
        if value.startswith(other) and len(value) > len(other):
            return value[len(other):]
    return value
