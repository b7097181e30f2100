"""Signed reads: tidechain's profile of RFC 9421 HTTP Message Signatures (ADR 0015).

A reader proves possession of its Ed25519 member key by signing each request. The
profile, stated once here and used by both the node (`verify_request`) and the SDK
(`sign_headers`):

* algorithm `ed25519` only; `keyid` is the member's public key as 64 lowercase hex
  digits (the node then checks membership itself: this module proves possession of
  the key, never standing);
* covered components `"@method" "@authority" "@path" "@query"`, in that order;
* parameters `created`, `expires`, `nonce`, `keyid`, `alg="ed25519"`, `tag="tidechain"`,
  all required; label `tide`.

The RFC machinery (signature base, Structured Field serialisation, the Ed25519 check)
is the `http-message-signatures` library's; the policy above is ours and is checked
first, so every refusal names what is wrong in our words. The library reads the wall
clock when it checks `created` and `expires`; `_ClockedVerifier` replaces that check,
so time comes in as an argument here as everywhere (STYLE.md).

`NonceBook` is the replay guard the node keeps beside `verify_request`: a signature's
nonce may be used once while that signature is still acceptable.

Pure apart from the library: no clock, no randomness, no I/O.
"""

from __future__ import annotations

import datetime
import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cryptography.exceptions
import http_sf
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from http_message_signatures import (
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)
from http_sf.compat import InnerList

from tidechain.core import errors
from tidechain.core.crypto import PUBLIC_KEY_BYTES, SEED_BYTES, SIGNATURE_BYTES, SigningKey
from tidechain.core.errors import Busy, InvariantViolation, Rejected, invariant
from tidechain.core.limits import (
    DEFAULT_SIGNATURE_LIFETIME_S,
    MAX_CLOCK_SKEW_S,
    MAX_NONCE_CHARS,
    MAX_REMEMBERED_NONCES,
    MAX_SIGNATURE_FIELD_BYTES,
    MAX_SIGNATURE_LIFETIME_S,
)

LABEL = "tide"
"""The dictionary key of our signature. Labels are not signed (RFC 9421 section 7.2.6),
so the verifier reads no meaning into them: `TAG` is what marks a tidechain read."""

TAG = "tidechain"
"""The signed application tag: a signature made for another application is refused."""

ALGORITHM = "ed25519"
COVERED_COMPONENTS: tuple[str, ...] = ("@method", "@authority", "@path", "@query")
"""What a signature covers. No header field is covered: a read has no body, and the
method and the whole target (authority, path, query) are what a replay would change."""

REQUIRED_PARAMETERS: tuple[str, ...] = ("created", "expires", "nonce", "keyid", "alg", "tag")

_SIGNATURE_INPUT = "signature-input"
_SIGNATURE = "signature"
_INTEGER_PARAMETERS = frozenset({"created", "expires"})
_SIGNATURE_PARAMS_ID = '"@signature-params"'  # the library lists it among what it verified


class BadSignature(errors.BadSignature):
    """A signed read the node refuses (401). A subclass of the core's BadSignature, so
    code that catches any bad signature catches this one too; 401, not the core's 400,
    because the reader failed to authenticate rather than sent a malformed body."""

    code = "bad_signature"
    http_status = 401


class UnsignableRequest(Rejected):
    """The SDK was asked to sign something the RFC cannot express: a URL that is not an
    encoded absolute URL, a lowercase method, a nonce that is not a printable string,
    a lifetime outside the profile's bounds."""

    code = "unsignable_request"


@dataclass(frozen=True)
class SignedBy:
    """What a verified signature proves: the holder of `key` signed this request, valid
    from `created_s` to `expires_s`, once (with `nonce`, for the NonceBook)."""

    key: bytes
    created_s: int
    expires_s: int
    nonce: str


# --- signing --------------------------------------------------------------------------


def sign_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    key: SigningKey,
    *,
    created_s: int,
    nonce: str,
    lifetime_s: int = DEFAULT_SIGNATURE_LIFETIME_S,
) -> dict[str, str]:
    """The `Signature-Input` and `Signature` headers that make this request a signed read.

    `url` is the absolute URL the request goes to (scheme://host:port/path?query), as
    the HTTP client will send it. UnsignableRequest if the profile cannot sign it.
    """
    if not 1 <= lifetime_s <= MAX_SIGNATURE_LIFETIME_S:
        raise UnsignableRequest(
            f"signature lifetime must be 1..{MAX_SIGNATURE_LIFETIME_S} s, not {lifetime_s}")
    reason = _nonce_defect(nonce)
    if reason is not None:
        raise UnsignableRequest(reason)
    params: dict[str, str | int] = {
        "created": created_s,
        "expires": created_s + lifetime_s,
        "nonce": nonce,
        "keyid": key.public_key.hex(),
        "alg": ALGORITHM,
        "tag": TAG,
    }
    return sign_standard(method, url, headers, key.seed, covered=COVERED_COMPONENTS,
                         params=params, label=LABEL)


def sign_standard(
    method: str,
    url: str,
    headers: Mapping[str, str],
    private_seed: bytes,
    *,
    covered: Sequence[str],
    params: Mapping[str, str | int],
    label: str,
) -> dict[str, str]:
    """Plain RFC 9421 signing with Ed25519, no tidechain policy: the two headers.

    `params` must hold `created` and `keyid` (the library always writes both; taking
    `created` from the caller keeps the wall clock out); `alg` (if given, "ed25519"),
    `expires`, `nonce` and `tag` are optional. The library serialises parameters in
    its own fixed order: created, keyid, alg, expires, nonce, tag.
    """
    unknown = sorted(set(params) - set(REQUIRED_PARAMETERS))
    if unknown:
        raise UnsignableRequest(f"unknown signature parameters: {', '.join(unknown)}")
    for name in ("created", "keyid"):
        if name not in params:
            raise UnsignableRequest(f"signature parameter {name!r} is required")
    if params.get("alg", ALGORITHM) != ALGORITHM:
        raise UnsignableRequest(f"only alg={ALGORITHM!r} is supported, not {params['alg']!r}")
    if len(private_seed) != SEED_BYTES:
        raise UnsignableRequest(f"an Ed25519 seed is {SEED_BYTES} bytes, not {len(private_seed)}")
    private_key = Ed25519PrivateKey.from_private_bytes(private_seed)
    keyid = params["keyid"]
    message = _Message(method, url, dict(headers))
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ED25519,
                               key_resolver=_OneKey(private=private_key))
    try:
        signer.sign(
            message,
            key_id=_string(keyid, "keyid"),
            created=_time(params["created"], "created"),
            expires=_time(params["expires"], "expires") if "expires" in params else None,
            nonce=_string(params["nonce"], "nonce") if "nonce" in params else None,
            tag=_string(params["tag"], "tag") if "tag" in params else None,
            label=label,
            include_alg="alg" in params,
            covered_component_ids=tuple(covered),
            # The library refuses to sign a message that carries a Content-Digest unless
            # told to keep it (RFC 9530 digests are not ours to vouch for): keep it,
            # covered only if the caller covers it.
            use_existing_digest=any(name.lower() == "content-digest" for name in headers),
        )
    except HTTPMessageSignaturesException as exc:
        raise UnsignableRequest(f"cannot sign {method} {url}: {exc}") from exc
    return {"Signature-Input": message.headers["Signature-Input"],
            "Signature": message.headers["Signature"]}


def _string(value: str | int, name: str) -> str:
    if not isinstance(value, str):
        raise UnsignableRequest(f"signature parameter {name!r} must be a string")
    return value


def _time(value: str | int, name: str) -> datetime.datetime:
    # The library takes datetimes and writes int(timestamp()): exact for whole seconds
    # in UTC, so the integer we were given is the integer that gets signed.
    if type(value) is not int or value < 0:
        raise UnsignableRequest(f"signature parameter {name!r} must be whole seconds >= 0")
    try:
        return datetime.datetime.fromtimestamp(value, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise UnsignableRequest(f"signature parameter {name!r} is out of range") from exc


# --- verifying ------------------------------------------------------------------------


def has_signature(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> bool:
    """Whether the request carries a signature at all (either header, any case): the
    node then requires it to verify rather than treating the reader as anonymous."""
    return any(name.lower() in (_SIGNATURE_INPUT, _SIGNATURE) for name, _ in _fields(headers))


def verify_request(
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]] | Mapping[str, str],
    *,
    now_s: int,
) -> SignedBy:
    """Check a signed read against the profile at time `now_s`: who signed it, and when.

    BadSignature (401) with the reason on any defect. Membership of the key and replay
    (`NonceBook.admit`) are the caller's next checks. `url` is the absolute URL the
    request was sent to, as the server sees it (aiohttp: `str(request.url)`).
    """
    fields = _fields(headers)
    parsed = _one_signature(fields)
    params = parsed.params
    _check_parameters(params)
    _check_components(parsed.components)
    _check_times(params, now_s)
    if len(parsed.signature) != SIGNATURE_BYTES:
        raise BadSignature(f"an Ed25519 signature is {SIGNATURE_BYTES} bytes, "
                           f"not {len(parsed.signature)}")
    public_key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(params["keyid"]))
    verifier = _ClockedVerifier(public_key, now_s=now_s)
    result = _library_verify(verifier, _Message(method, url, _Fields(fields)), expect_tag=TAG)
    # See what is signed (RFC 9421 section 7.2.1): the answer comes from what the library
    # verified, which must be what the policy checks looked at.
    signed = result.parameters
    invariant(all(signed.get(name) == params[name] for name in REQUIRED_PARAMETERS),
              "the library verified other parameters than the policy checked")
    invariant(set(result.covered_components) ==
              {*(f'"{c}"' for c in COVERED_COMPONENTS), _SIGNATURE_PARAMS_ID},
              "the library verified other components than the policy checked")
    return SignedBy(key=bytes.fromhex(str(signed["keyid"])), created_s=int(signed["created"]),
                    expires_s=int(signed["expires"]), nonce=str(signed["nonce"]))


def verify_standard(
    method: str,
    url: str,
    headers: Iterable[tuple[str, str]] | Mapping[str, str],
    public_key: bytes,
    *,
    now_s: int | None = None,
) -> list[str]:
    """Plain RFC 9421 verification of the message's single Ed25519 signature with
    `public_key`, no tidechain policy: the covered component identifiers, serialised
    as in Signature-Input (e.g. `'"date"'`, `'"@query-param";name="Pet"'`).

    With `now_s`, `created` may not lie in the future nor `expires` in the past (beyond
    MAX_CLOCK_SKEW_S); without it no time is checked. The library insists on a `keyid`
    parameter, which the RFC leaves optional. BadSignature on any failure.
    """
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise BadSignature(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes, "
                           f"not {len(public_key)}")
    verifier = _ClockedVerifier(Ed25519PublicKey.from_public_bytes(public_key), now_s=now_s)
    verifier.require_created = False  # optional in RFC 9421 section 2.3
    result = _library_verify(verifier, _Message(method, url, _Fields(_fields(headers))),
                             expect_tag=None)
    return [c for c in result.covered_components if c != _SIGNATURE_PARAMS_ID]


def _fields(headers: Iterable[tuple[str, str]] | Mapping[str, str]) -> list[tuple[str, str]]:
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def _combined(fields: list[tuple[str, str]], name: str) -> str | None:
    """All lines of one field joined as RFC 9110 section 5.3 joins them, as the library
    does, so the policy and the library read the same value."""
    lines = [value.strip(" \t") for field, value in fields if field.lower() == name]
    return ", ".join(lines) if lines else None


@dataclass(frozen=True)
class _Parsed:
    """The message's one signature as http_sf parsed it (values not yet checked)."""

    components: list[Any]  # (value, parameters) pairs
    params: dict[str, Any]
    signature: bytes


def _one_signature(fields: list[tuple[str, str]]) -> _Parsed:
    raw_input = _combined(fields, _SIGNATURE_INPUT)
    raw_signature = _combined(fields, _SIGNATURE)
    hint = "sign the request with your member key (RFC 9421, label 'tide')"
    if raw_input is None:
        raise BadSignature(f"missing Signature-Input header: {hint}")
    if raw_signature is None:
        raise BadSignature(f"missing Signature header: {hint}")
    inputs = _dictionary(raw_input, "Signature-Input")
    signatures = _dictionary(raw_signature, "Signature")
    if len(inputs) != 1 or len(signatures) != 1:
        raise BadSignature(f"more than one signature (Signature-Input has {len(inputs)}, "
                           f"Signature has {len(signatures)}): send exactly one")
    if inputs.keys() != signatures.keys():
        raise BadSignature("Signature-Input and Signature name different labels")
    (label,) = inputs
    (covered, params) = inputs[label]
    (signature, _) = signatures[label]
    if not isinstance(covered, list):
        raise BadSignature(f"malformed Signature-Input header: {label!r} is not an inner list")
    if not isinstance(signature, bytes):
        raise BadSignature(f"malformed Signature header: {label!r} is not a byte sequence")
    return _Parsed(components=covered, params=dict(params), signature=signature)


def _dictionary(value: str, header: str) -> dict[str, Any]:
    if len(value.encode("utf-8")) > MAX_SIGNATURE_FIELD_BYTES:
        raise BadSignature(f"{header} header is longer than {MAX_SIGNATURE_FIELD_BYTES} bytes")

    def refuse_duplicate(key: str, context: str) -> None:
        if context == "dictionary":
            raise ValueError(f"label {key!r} appears twice")

    try:
        parsed = http_sf.parse(value.encode("utf-8"), tltype="dictionary",
                               on_duplicate_key=refuse_duplicate)
    except (ValueError, TypeError) as exc:  # http_sf's StructuredFieldError is a ValueError
        raise BadSignature(f"malformed {header} header: {exc}") from exc
    if not isinstance(parsed, dict):
        raise InvariantViolation("http_sf's dictionary parse returned no dict")
    if not parsed:
        raise BadSignature(f"{header} header holds no signature")
    return parsed


def _check_parameters(params: dict[str, Any]) -> None:
    missing = [name for name in REQUIRED_PARAMETERS if name not in params]
    if missing:
        raise BadSignature(f"signature lacks parameters the tidechain profile requires: "
                           f"{', '.join(missing)}")
    unknown = sorted(set(params) - set(REQUIRED_PARAMETERS))
    if unknown:
        raise BadSignature(f"unexpected signature parameters: {', '.join(unknown)}")
    for name, value in params.items():
        want = int if name in _INTEGER_PARAMETERS else str
        # Exact types: a boolean is not an integer, a Token is not a String.
        if type(value) is not want:
            raise BadSignature(f"signature parameter {name!r} must be a structured-field "
                               f"{'integer' if want is int else 'string'}")
    if params["tag"] != TAG:
        raise BadSignature(f"tag is {params['tag']!r}, not {TAG!r}: not a tidechain signed read")
    if params["alg"] != ALGORITHM:
        raise BadSignature(f"alg is {params['alg']!r}; only {ALGORITHM!r} is accepted")
    keyid: str = params["keyid"]
    if len(keyid) != 2 * PUBLIC_KEY_BYTES or any(c not in "0123456789abcdef" for c in keyid):
        raise BadSignature(f"keyid must be the member's Ed25519 public key as "
                           f"{2 * PUBLIC_KEY_BYTES} lowercase hex digits")
    reason = _nonce_defect(params["nonce"])
    if reason is not None:
        raise BadSignature(reason)


def _nonce_defect(nonce: str) -> str | None:
    if not nonce:
        return "nonce is empty: each signed read needs a fresh nonce"
    if len(nonce) > MAX_NONCE_CHARS:
        return f"nonce is longer than {MAX_NONCE_CHARS} characters"
    if not all(" " <= c <= "~" for c in nonce):
        return "nonce must be printable ASCII (a structured-field string)"
    return None


def _check_components(components: list[Any]) -> None:
    ids = []
    for component in components:
        value, params = component
        if not isinstance(value, str):
            raise BadSignature("covered components must be structured-field strings")
        ids.append(http_sf.ser((value, params)) if params else value)
    for wanted in COVERED_COMPONENTS:
        if wanted not in ids:
            profile = " ".join(f'"{c}"' for c in COVERED_COMPONENTS)
            raise BadSignature(f'signature does not cover "{wanted}": the tidechain profile '
                               f"covers {profile}")
    if len(ids) != len(COVERED_COMPONENTS):
        extra = [i for i in ids if i not in COVERED_COMPONENTS] or ids
        raise BadSignature(f"signature covers more than the tidechain profile: "
                           f"{', '.join(extra)}")


def _check_times(params: dict[str, Any], now_s: int) -> None:
    created: int = params["created"]
    expires: int = params["expires"]
    if created > now_s + MAX_CLOCK_SKEW_S:
        raise BadSignature(f"created {created} is {created - now_s} s in the future (clock "
                           f"skew allowed: {MAX_CLOCK_SKEW_S} s): check the reader's clock")
    if expires <= created:
        raise BadSignature(f"expires {expires} is not after created {created}")
    if expires - created > MAX_SIGNATURE_LIFETIME_S:
        raise BadSignature(f"signature lifetime {expires - created} s exceeds "
                           f"{MAX_SIGNATURE_LIFETIME_S} s")
    if expires < now_s - MAX_CLOCK_SKEW_S:
        raise BadSignature(f"signature expired {now_s - expires} s ago (at {expires}; clock "
                           f"skew allowed: {MAX_CLOCK_SKEW_S} s)")


def _library_verify(verifier: _ClockedVerifier, message: _Message, *,
                    expect_tag: str | None) -> Any:
    """The library's verification of the one signature, its exceptions as BadSignature."""
    try:
        results = verifier.verify(message, max_age=None, expect_tag=expect_tag)
    except InvalidSignature as exc:
        if isinstance(exc.__cause__, cryptography.exceptions.InvalidSignature):
            raise BadSignature(
                "signature does not verify: wrong key or altered request") from exc
        raise BadSignature(f"signature cannot be checked: {exc}") from exc
    except HTTPMessageSignaturesException as exc:
        raise BadSignature(f"signature cannot be checked: {exc}") from exc
    if len(results) != 1:
        raise BadSignature(f"expected one signature, the library verified {len(results)}")
    return results[0]


class _ClockedVerifier(HTTPMessageVerifier):
    """The library's verifier with the clock as an argument: `now_s` at construction
    (one verifier per request) replaces its read of the wall clock; None checks no time.
    Only ever holds one key: whatever the keyid, the key is the one given."""

    def __init__(self, public_key: Ed25519PublicKey, *, now_s: int | None) -> None:
        super().__init__(signature_algorithm=algorithms.ED25519,
                         key_resolver=_OneKey(public=public_key))
        self._now_s = now_s

    def validate_created_and_expires(self, sig_input: InnerList,
                                     max_age: datetime.timedelta | None = None) -> None:
        # The same rules as the library's method, in whole seconds, at `now_s`.
        if self._now_s is None:
            return
        skew_s = MAX_CLOCK_SKEW_S
        created = sig_input.params.get("created")
        expires = sig_input.params.get("expires")
        for name, value in (("created", created), ("expires", expires)):
            if value is not None and type(value) is not int:
                raise InvalidSignature(f'Parameter "{name}" must be a Structured Field Integer')
        if created is None:
            if self.require_created or max_age is not None:
                raise InvalidSignature('Signature is missing a required "created" parameter')
        elif created > self._now_s + skew_s:
            raise InvalidSignature('Signature "created" parameter is set to a time in the future')
        if expires is not None and expires < self._now_s - skew_s:
            raise InvalidSignature('Signature "expires" parameter is set to a time in the past')
        if (max_age is not None and created is not None
                and created + max_age.total_seconds() < self._now_s - skew_s):
            raise InvalidSignature(f"Signature age exceeds maximum allowable age {max_age}")


class _OneKey(HTTPSignatureKeyResolver):
    def __init__(self, *, public: Ed25519PublicKey | None = None,
                 private: Ed25519PrivateKey | None = None) -> None:
        self._public = public
        self._private = private

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey | None:
        return self._public

    def resolve_private_key(self, key_id: str) -> Ed25519PrivateKey:
        if self._private is None:
            raise InvariantViolation("a verifier's key resolver was asked to sign")
        return self._private


class _Fields:
    """Header lines as the library reads them (`items()`), read-only: verification
    never writes to the request."""

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields

    def items(self) -> list[tuple[str, str]]:
        return self._fields


@dataclass
class _Message:
    """The request shape the library reads: `method`, encoded absolute `url`, `headers`."""

    method: str
    url: str
    headers: Any


# --- replay guard ---------------------------------------------------------------------


class NonceBook:
    """The nonces of signatures still acceptable, so each signature is used once.

    Memory only and bounded (`capacity`): a nonce is remembered until its signature
    expires plus MAX_CLOCK_SKEW_S, which is exactly when `verify_request` starts to
    refuse that signature anyway, and then forgotten. Call `admit` after
    `verify_request` and after the membership check, so only members fill the book.

    When the book is full of unexpired entries, `admit` refuses with Busy (503, with a
    Retry-After of when the soonest entry can go). It must not evict instead: an
    evicted nonce whose signature has not expired could be replayed. And the refusal
    is not BadSignature (401): the reader's signature is fine, the node is overloaded,
    so the right reaction is the same request a little later, which Busy says.

    The time used is the latest `now_s` seen: a clock stepping backwards cannot bring
    back to life a signature whose nonce was already forgotten.
    """

    def __init__(self, capacity: int = MAX_REMEMBERED_NONCES) -> None:
        invariant(capacity >= 1, f"capacity must be >= 1, not {capacity}")
        self._capacity = capacity
        self._expires_s: dict[tuple[bytes, str], int] = {}
        self._by_expiry: list[tuple[int, bytes, str]] = []  # a heap; one item per entry
        self._latest_s: int | None = None

    def __len__(self) -> int:
        return len(self._expires_s)

    def admit(self, signed: SignedBy, now_s: int) -> None:
        """Record `signed`'s nonce; BadSignature if it was already used (a replay) or
        the signature has expired, Busy if the book is full."""
        self._latest_s = now_s if self._latest_s is None else max(self._latest_s, now_s)
        horizon_s = self._latest_s - MAX_CLOCK_SKEW_S
        self._forget_before(horizon_s)
        if signed.expires_s < horizon_s:
            raise BadSignature(f"signature expired {self._latest_s - signed.expires_s} s ago")
        entry = (signed.key, signed.nonce)
        if entry in self._expires_s:
            raise BadSignature("replayed: this signature's nonce was already used")
        if len(self._expires_s) >= self._capacity:
            soonest_s = self._by_expiry[0][0]
            raise Busy("too many signed requests in flight; retry shortly",
                       retry_after_s=max(1, soonest_s - horizon_s + 1))
        self._expires_s[entry] = signed.expires_s
        heapq.heappush(self._by_expiry, (signed.expires_s, signed.key, signed.nonce))

    def _forget_before(self, horizon_s: int) -> None:
        while self._by_expiry and self._by_expiry[0][0] < horizon_s:
            _, key, nonce = heapq.heappop(self._by_expiry)
            del self._expires_s[(key, nonce)]
