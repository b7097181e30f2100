"""Hex text for fixed-size values (digests, ids, keys): one parser for the API, the SDK
and the CLI, so all three refuse the same input with the same reason."""

from __future__ import annotations

from typing import Any

from tidechain.core.errors import DecodeError


def parse_hex(text: str, size: int, what: str) -> bytes:
    """`size` bytes written as 2 * size hex digits, or DecodeError naming `what`."""
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != size:
        raise DecodeError(f"{what} must be {size * 2} hex digits")
    return value


def to_json(value: Any) -> Any:
    """CBOR values as JSON: byte strings as lowercase hex."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value
