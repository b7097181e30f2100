"""RFC 3161 time stamps: a pure codec for requests and responses (`rfc3161`) and the
time-stamping authority's certificate from an organisation's CA (`tsa_cert`)."""

from __future__ import annotations

from tidechain.timestamp.rfc3161 import (
    DEPOSIT_INDEX_OID,
    FailureInfo,
    Rejection,
    TimestampFormatError,
    TimeStampRequest,
    TokenSummary,
    TsaSigner,
    describe_token,
    granted_response,
    parse_request,
    parse_token_deposit_index,
    rejection_response,
)
from tidechain.timestamp.tsa_cert import TsaCertError, issue_tsa_certificate, load_tsa_signer

__all__ = [
    "DEPOSIT_INDEX_OID",
    "FailureInfo",
    "Rejection",
    "TimeStampRequest",
    "TimestampFormatError",
    "TokenSummary",
    "TsaCertError",
    "TsaSigner",
    "describe_token",
    "granted_response",
    "issue_tsa_certificate",
    "load_tsa_signer",
    "parse_request",
    "parse_token_deposit_index",
    "rejection_response",
]
