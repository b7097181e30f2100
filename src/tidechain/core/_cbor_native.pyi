"""Stub of the compiled twins of `tidechain.core.cbor`'s reference codec (_cbor_native.c)."""

from typing import Any

def decode(buf: bytes, max_depth: int, max_items: int, /) -> Any:
    """The value `decode_reference(buf)` gives; ValueError wherever it raises."""

def encode(value: Any, max_depth: int, max_items: int, encoded_type: type, /) -> bytes:
    """The bytes `encode_reference(value)` gives; ValueError wherever it raises, and for
    the types it leaves to the reference (bytearray, memoryview, container subclasses)."""
