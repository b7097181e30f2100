"""Deterministic CBOR (RFC 8949 section 4.2.1, "core deterministic encoding").

The canonical encoding *is* the product (ADR 0001), so it is ours and small:

* data model: unsigned and negative integers (64-bit), byte strings, text strings,
  arrays, maps, true, false, null. No floats, no tags, no undefined: nothing that
  has two encodings or that a contract should ever see. Map keys are integers or
  text strings only: a Python dict merges the keys 1 and True (and 0 and False), so
  allowing bool keys would let two different byte strings decode to one value.
* bounds (`limits`): at most MAX_CBOR_DEPTH nesting and MAX_CBOR_ITEMS per array or
  map, enforced by the encoder too, so we never produce bytes our decoder refuses.
* encoding: shortest argument form, definite lengths only, map keys sorted by the
  bytewise order of their own deterministic encodings, no duplicate keys.
* decoding is strict: any input that is not exactly what `encode` would produce for
  the decoded value is rejected with `DecodeError`, so one value has one byte string
  and a signature over bytes is a signature over a value.

Two codecs, one behaviour. `encode_reference` and `decode_reference` are the
specification, in Python. `encode` and `decode` use their compiled twins in
`_cbor_native` (src/tidechain/core/_cbor_native.c, built by `pip install`; optional)
when it is importable. A twin gives exactly the reference's bytes or value; whatever it
refuses is handed to the reference, which raises the exact DecodeError or TooLarge (or,
for a type the compiled encoder leaves to it, encodes it). tests/test_cbor_native.py
checks each twin against its reference. `NATIVE` tells whether the twins are in use.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from tidechain.core.errors import DecodeError, TooLarge
from tidechain.core.limits import MAX_CBOR_DEPTH, MAX_CBOR_ITEMS

CborValue = Any  # int | bytes | str | bool | None | list[CborValue] | dict[CborValue, CborValue]

_UINT64_MAX = (1 << 64) - 1
_NEGINT_MIN = -(1 << 64)

_MAJOR_UINT = 0
_MAJOR_NEGINT = 1
_MAJOR_BYTES = 2
_MAJOR_TEXT = 3
_MAJOR_ARRAY = 4
_MAJOR_MAP = 5
_MAJOR_SIMPLE = 7

_KEY_MAJORS = (_MAJOR_UINT, _MAJOR_NEGINT, _MAJOR_TEXT)

_FALSE = b"\xf4"
_TRUE = b"\xf5"
_NULL = b"\xf6"


def _head(major: int, argument: int) -> bytes:
    """The initial byte(s) of an item, in the shortest form (RFC 8949 4.2.1)."""
    mt = major << 5
    if argument < 24:
        return bytes((mt | argument,))
    if argument < 0x100:
        return bytes((mt | 24, argument))
    if argument < 0x10000:
        return struct.pack(">BH", mt | 25, argument)
    if argument < 0x100000000:
        return struct.pack(">BI", mt | 26, argument)
    return struct.pack(">BQ", mt | 27, argument)


def encode(value: CborValue) -> bytes:
    """The deterministic encoding of `value`: the bytes `encode_reference` gives, or the
    DecodeError or TooLarge it raises."""
    if _native is not None:
        try:
            encoded: bytes = _native.encode(value, MAX_CBOR_DEPTH, MAX_CBOR_ITEMS, Encoded)
            return encoded
        except ValueError:
            pass  # refused, or a type it leaves to the reference: the reference decides
    return encode_reference(value)


def encode_reference(value: CborValue) -> bytes:
    """The deterministic encoding of `value`. Raises DecodeError for values outside
    the data model (floats, sets, integers beyond 64 bits...)."""
    out: list[bytes] = []
    _encode_into(value, out, 0)
    return b"".join(out)


@dataclass(frozen=True)
class Encoded:
    """An item already in deterministic CBOR (made by `encode`), spliced into a larger
    encoding as is: a transaction's envelope inside a log entry is encoded once."""

    data: bytes


_KEY_CACHE: dict[str, bytes] = {}
_KEY_CACHE_MAX = 4096
"""Encoded text map keys: our structures reuse a few dozen field names, and encoding
them was a third of the encoder's time (measured with cProfile on block execution)."""


def _encode_into(value: CborValue, out: list[bytes], depth: int) -> None:
    if depth > MAX_CBOR_DEPTH:
        raise TooLarge(f"nesting deeper than {MAX_CBOR_DEPTH}")
    kind = type(value)
    # Exact-type fast paths first (the common case); subclasses fall through to the
    # isinstance checks below. bool is tested by identity before int.
    if kind is str:
        data = _utf8(value)
        out.append(_head(_MAJOR_TEXT, len(data)))
        out.append(data)
    elif kind is bytes:
        out.append(_head(_MAJOR_BYTES, len(value)))
        out.append(value)
    elif kind is int:
        _encode_int(value, out)
    elif kind is dict:
        _encode_map(value, out, depth)
    elif kind is Encoded:
        out.append(value.data)
    elif value is True:
        out.append(_TRUE)
    elif value is False:
        out.append(_FALSE)
    elif value is None:
        out.append(_NULL)
    elif isinstance(value, int):
        _encode_int(value, out)
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        out.append(_head(_MAJOR_BYTES, len(data)))
        out.append(data)
    elif isinstance(value, str):
        data = _utf8(value)
        out.append(_head(_MAJOR_TEXT, len(data)))
        out.append(data)
    elif isinstance(value, list | tuple):
        _check_item_count(len(value), "array")
        out.append(_head(_MAJOR_ARRAY, len(value)))
        for item in value:
            _encode_into(item, out, depth + 1)
    elif isinstance(value, dict):
        _encode_map(value, out, depth)
    else:
        raise DecodeError(f"type {type(value).__name__} is not in tidechain's CBOR data model")


def _encode_int(value: int, out: list[bytes]) -> None:
    if 0 <= value <= _UINT64_MAX:
        out.append(_head(_MAJOR_UINT, value))
    elif _NEGINT_MIN <= value < 0:
        out.append(_head(_MAJOR_NEGINT, -1 - value))
    else:
        raise DecodeError(f"integer {value} outside the 64-bit CBOR range")


def _encode_map(value: dict[CborValue, CborValue], out: list[bytes], depth: int) -> None:
    _check_item_count(len(value), "map")
    shape = tuple(value)
    order = _MAP_ORDERS.get(shape)
    if order is None:
        order = _map_order(value)
    out.append(_head(_MAJOR_MAP, len(order)))
    for key_bytes, key in order:
        out.append(key_bytes)
        _encode_into(value[key], out, depth + 1)


_MAP_ORDERS: dict[tuple[CborValue, ...], list[tuple[bytes, CborValue]]] = {}
"""The canonical key order of maps with only text keys, by their keys in insertion
order: our structures always build their maps the same way, so sorting is done once
per structure, not once per value (cProfile showed sorting dominating block execution).
Only all-text shapes are cached, so 1 and True can never share an entry."""


def _map_order(value: dict[CborValue, CborValue]) -> list[tuple[bytes, CborValue]]:
    # Sort on the key bytes alone: comparing values on a tie could raise TypeError.
    order = sorted(((_encode_key(k), k) for k in value), key=_first)
    for (a, _), (b, _) in itertools.pairwise(order):
        if a == b:
            raise DecodeError("duplicate map key")
    if len(_MAP_ORDERS) < _KEY_CACHE_MAX and all(type(k) is str for k in value):
        _MAP_ORDERS[tuple(value)] = order
    return order


def _first(pair: tuple[bytes, CborValue]) -> bytes:
    return pair[0]


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates have no UTF-8 form
        raise DecodeError("text string is not valid Unicode (lone surrogate)") from exc


def _check_item_count(count: int, kind: str) -> None:
    if count > MAX_CBOR_ITEMS:
        raise TooLarge(f"CBOR {kind} of {count} items exceeds {MAX_CBOR_ITEMS}")


def _encode_key(key: CborValue) -> bytes:
    if type(key) is str:
        cached = _KEY_CACHE.get(key)
        if cached is None:
            cached = encode_reference(key)
            if len(_KEY_CACHE) < _KEY_CACHE_MAX:
                _KEY_CACHE[key] = cached
        return cached
    # bool is a subclass of int, and a dict merges True with 1: refuse bool keys.
    if isinstance(key, str) or (isinstance(key, int) and not isinstance(key, bool)):
        return encode_reference(key)
    raise DecodeError(f"map keys must be integers or text strings, not {type(key).__name__}")


def _load_native() -> ModuleType | None:
    try:
        from tidechain.core import _cbor_native
    except ImportError:  # built without a C compiler: the reference codec does it all
        return None
    return _cbor_native


_native = _load_native()
NATIVE: bool = _native is not None
"""Whether `encode` and `decode` use the compiled twins (else the references alone)."""


def compiled(name: str) -> Any:
    """The compiled module's function `name` (a twin of a structure's checks, such as
    `decode_signed_tx`), or None when the module was not built."""
    return getattr(_native, name, None)


def decode(data: bytes) -> CborValue:
    """Decode exactly one deterministic CBOR item occupying all of `data`: the value
    `decode_reference` gives, or the DecodeError or TooLarge it raises."""
    if type(data) is not bytes:  # the common case skips the slower isinstance check
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError("CBOR input must be bytes")
        data = bytes(data)
    if _native is not None:
        try:
            return _native.decode(data, MAX_CBOR_DEPTH, MAX_CBOR_ITEMS)
        except ValueError:
            pass  # refused: the reference says why (and has the last word)
    return decode_reference(data)


def decode_reference(data: bytes) -> CborValue:
    """Decode exactly one deterministic CBOR item occupying all of `data`."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError("CBOR input must be bytes")
    buf = bytes(data)
    value, end = _decode_at(buf, 0, 0)
    if end != len(buf):
        raise DecodeError(f"{len(buf) - end} trailing bytes after the CBOR item")
    return value


def array_items(data: bytes) -> list[bytes]:
    """The encodings of the items of one CBOR array occupying all of `data`, each
    checked as strictly as `decode` checks it (to pass stored items on unchanged)."""
    buf = bytes(data)
    if not buf or buf[0] >> 5 != 4:
        raise DecodeError("expected a CBOR array")
    count, pos = _read_argument(buf, 1, buf[0] & 0x1F)
    _check_item_count(count, "array")
    items = []
    for _ in range(count):
        _, end = _decode_at(buf, pos, 1)
        items.append(buf[pos:end])
        pos = end
    if pos != len(buf):
        raise DecodeError(f"{len(buf) - pos} trailing bytes after the CBOR array")
    return items


def _read_argument(buf: bytes, pos: int, info: int) -> tuple[int, int]:
    """Returns (argument, next position); rejects non-shortest forms."""
    if info < 24:
        return info, pos
    if info == 24:
        if pos + 1 > len(buf):
            raise DecodeError("truncated CBOR argument")
        arg = buf[pos]
        if arg < 24:
            raise DecodeError("non-canonical CBOR: argument not in shortest form")
        return arg, pos + 1
    if info == 25:
        if pos + 2 > len(buf):
            raise DecodeError("truncated CBOR argument")
        arg = int.from_bytes(buf[pos : pos + 2], "big")
        if arg < 0x100:
            raise DecodeError("non-canonical CBOR: argument not in shortest form")
        return arg, pos + 2
    if info == 26:
        if pos + 4 > len(buf):
            raise DecodeError("truncated CBOR argument")
        arg = int.from_bytes(buf[pos : pos + 4], "big")
        if arg < 0x10000:
            raise DecodeError("non-canonical CBOR: argument not in shortest form")
        return arg, pos + 4
    if info == 27:
        if pos + 8 > len(buf):
            raise DecodeError("truncated CBOR argument")
        arg = int.from_bytes(buf[pos : pos + 8], "big")
        if arg < 0x100000000:
            raise DecodeError("non-canonical CBOR: argument not in shortest form")
        return arg, pos + 8
    if info == 31:
        raise DecodeError("indefinite-length CBOR items are not deterministic")
    raise DecodeError(f"reserved CBOR additional information {info}")


def _decode_at(buf: bytes, pos: int, depth: int) -> tuple[CborValue, int]:
    if depth > MAX_CBOR_DEPTH:
        raise TooLarge(f"CBOR nesting deeper than {MAX_CBOR_DEPTH}")
    if pos >= len(buf):
        raise DecodeError("truncated CBOR input")
    initial = buf[pos]
    major = initial >> 5
    info = initial & 0x1F
    pos += 1
    if major == _MAJOR_SIMPLE:
        if info == 20:
            return False, pos
        if info == 21:
            return True, pos
        if info == 22:
            return None, pos
        raise DecodeError("floats, undefined and other simple values are not allowed")
    if info < 24:  # the common case, inlined: the argument is in the initial byte
        arg = info
    else:
        arg, pos = _read_argument(buf, pos, info)
    if major == _MAJOR_UINT:
        return arg, pos
    if major == _MAJOR_NEGINT:
        return -1 - arg, pos
    if major in (_MAJOR_BYTES, _MAJOR_TEXT):
        end = pos + arg
        if end > len(buf):
            raise DecodeError("truncated CBOR string")
        raw = buf[pos:end]
        if major == _MAJOR_BYTES:
            return raw, end
        try:
            return raw.decode("utf-8"), end
        except UnicodeDecodeError as exc:
            raise DecodeError("CBOR text string is not valid UTF-8") from exc
    if major == _MAJOR_ARRAY:
        _check_item_count(arg, "array")
        items = []
        for _ in range(arg):
            item, pos = _decode_at(buf, pos, depth + 1)
            items.append(item)
        return items, pos
    if major == _MAJOR_MAP:
        return _decode_map(buf, pos, depth, arg)
    raise DecodeError(f"CBOR tags (major type {major}) are not allowed")  # major 6


def _decode_map(buf: bytes, pos: int, depth: int, count: int) -> tuple[CborValue, int]:
    _check_item_count(count, "map")
    result: dict[CborValue, CborValue] = {}
    previous_key = b""
    size = len(buf)
    for _ in range(count):
        key_start = pos
        if key_start >= size:
            raise DecodeError("truncated CBOR input")
        initial = buf[key_start]
        key: CborValue
        if 0x60 <= initial < 0x78:  # short text key: our field names; decoded via a cache
            pos = key_start + 1 + (initial - 0x60)
            key_bytes = buf[key_start:pos]
            cached = _DECODED_KEYS.get(key_bytes)
            if cached is None:
                key, pos = _decode_at(buf, key_start, depth + 1)
                if len(_DECODED_KEYS) < _KEY_CACHE_MAX:
                    _DECODED_KEYS[key_bytes] = key
            else:
                key = cached
        else:
            if initial >> 5 not in _KEY_MAJORS:
                raise DecodeError("CBOR map keys must be integers or text strings")
            key, pos = _decode_at(buf, pos, depth + 1)
            key_bytes = buf[key_start:pos]
        if key_bytes <= previous_key:  # b"" sorts first: no key encodes to nothing
            raise DecodeError("CBOR map keys not in deterministic order (or duplicated)")
        previous_key = key_bytes
        item, pos = _decode_at(buf, pos, depth + 1)
        result[key] = item
    return result, pos


_DECODED_KEYS: dict[bytes, str] = {}
"""Short text keys already decoded (bounded like _KEY_CACHE)."""
