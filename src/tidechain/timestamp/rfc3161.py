"""RFC 3161 time-stamp requests and responses, with RFC 5816's ESSCertIDv2, as pure
functions: bytes in, a typed result out. No I/O, no clock, no randomness: the time and
the serial number come in as arguments and ECDSA signs deterministically (RFC 6979), so
the same arguments always give the same token.

Requests come from anyone, so `parse_request` never raises: bytes that are too long,
not DER, or ask for what we do not do become a `Rejection`, which `rejection_response`
turns into a status-2 TimeStampResp. Wrong arguments from our own service (a serial out
of range, a policy the request did not ask for) are bugs and fail an `invariant`.

The token (section 2.4.2) is a CMS SignedData, version 3, with the TSTInfo attached,
one SignerInfo (identified by issuer and serial, as rfc3161-client requires) signing
contentType, messageDigest and signingCertificateV2 (the TSA certificate's SHA-256
and issuer/serial). No signingTime: genTime is the one time the token states.

genTime carries milliseconds with trailing zeros removed, as section 2.4.2's DER rules
require ("20250101120000.5Z"; whole seconds have no fraction). OpenSSL and
rfc3161-client both read the fraction.

The link to the chain: the service deposits the imprint first and the token then names
the deposit's log index in a non-critical TSTInfo extension (`DEPOSIT_INDEX_OID`,
value a DER INTEGER). Clients that do not know it ignore it, as RFC 5280 4.2 has them
do with non-critical extensions; OpenSSL 3.0 and rfc3161-client accept such tokens
(tests/test_rfc3161.py).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal

from asn1crypto import cms, core, tsp  # type: ignore[import-untyped]
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from tidechain.core.errors import Rejected, invariant
from tidechain.core.timefmt import iso_utc

# --- limits ---------------------------------------------------------------------------
MAX_REQUEST_BYTES = 4096
"""A SHA-512 request with a policy and a 160-bit nonce is under 150 bytes; 4 KiB leaves
room for extensions (which we then refuse by name) and bounds the parser's work."""

MAX_RESPONSE_BYTES = 64 * 1024
"""A token with a TSA certificate and a two-certificate chain is about 3 KiB; this bounds
what `describe_token` parses from a file someone hands us."""

MAX_NONCE_BITS = 160
"""Section 2.4.2 makes requesters handle 160-bit serial numbers; a nonce needs no more
(OpenSSL sends 64 bits) and we echo it, so we bound it the same way."""

MAX_SERIAL_BITS = 160
"""Section 2.4.2: requesters MUST handle serial numbers of up to 160 bits, no more."""

MAX_DEPOSIT_INDEX = 2**63 - 1
"""A log index is a signed 64-bit integer in the store (SQLite INTEGER)."""

MAX_STATUS_TEXT_CHARS = 200
"""Our own rejection texts are one sentence; a bound keeps rejection responses small."""

MAX_TIME_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z: GeneralizedTime has four year digits."""

# --- protocol constants ---------------------------------------------------------------
GRANTED: Final = 0
REJECTION: Final = 2

HASH_OIDS: Final = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
"""The imprint algorithms we accept, by OID (RFC 5758). Not by asn1crypto's names: it
calls HMAC-SHA256 (1.2.840.113549.2.9) "sha256" too. SHA-1 and MD5 are broken."""

HASH_BYTES: Final = {"sha256": 32, "sha384": 48, "sha512": 64}
_HASH_OID_OF: Final = {name: oid for oid, name in HASH_OIDS.items()}

DEPOSIT_INDEX_OID: Final = "2.25.173688719585020442404124375493217704550"
"""TSTInfo extension naming the chain log index of the deposit of the imprint. Under
2.25 (ITU-T X.667: an OID from a UUID, here 82ab3b08-efb0-43aa-ba54-a5592a115a66), which
needs no registration and cannot collide with anyone's arc. Non-critical; its value is
a DER INTEGER."""

FailureInfo = Literal["badAlg", "badRequest", "badDataFormat", "timeNotAvailable",
                      "unacceptedPolicy", "unacceptedExtension", "addInfoNotAvailable",
                      "systemFailure"]
"""PKIFailureInfo (section 2.4.2), by the RFC's names."""

_FAILURE_BITS: Final[dict[FailureInfo, str]] = {
    "badAlg": "bad_alg", "badRequest": "bad_request", "badDataFormat": "bad_data_format",
    "timeNotAvailable": "time_not_available", "unacceptedPolicy": "unaccepted_policy",
    "unacceptedExtension": "unaccepted_extensions",
    "addInfoNotAvailable": "add_info_not_available", "systemFailure": "system_failure",
}
"""RFC name -> asn1crypto's name for the same bit of the BIT STRING."""

_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
                  RecursionError)
"""What asn1crypto raises on hostile bytes (AttributeError: a REAL or an EXTERNAL where an
ANY is allowed; found by tests/test_rfc3161.py's fuzzing). Caught only around its
parsing, and turned into a typed refusal."""

MAX_QUOTED_CHARS = 48
"""How much of a requester's value (an OID, a version) a rejection text repeats: enough
to recognise it, never enough to overflow MAX_STATUS_TEXT_CHARS."""

_ORDINAL_1970_01_01 = 719_163
"""datetime.date(1970, 1, 1).toordinal(): day numbers to Unix days without a clock."""

_DER_NULL = b"\x05\x00"
"""SHA-2 AlgorithmIdentifiers come with parameters absent or NULL (RFC 5754 2); OpenSSL
sends NULL. Both are accepted and echoed as they came."""

_OID = re.compile(r"[0-2](?:\.(?:0|[1-9][0-9]*))+")


# --- results --------------------------------------------------------------------------
@dataclass(frozen=True)
class TimeStampRequest:
    """A request we accept (section 2.4.1)."""

    hash_alg: str
    """"sha256", "sha384" or "sha512"."""
    imprint: bytes
    nonce: int | None
    cert_req: bool
    policy: str | None
    """The requested policy (dotted OID), one of the accepted ones, or None."""
    null_params: bool = False
    """Whether the hash AlgorithmIdentifier had NULL parameters (rather than none): the
    token echoes the imprint exactly as requested (section 2.4.2)."""


@dataclass(frozen=True)
class Rejection:
    """A request we refuse, as rejection_response puts it on the wire."""

    failure_info: FailureInfo
    text: str
    status: int = REJECTION


@dataclass(frozen=True)
class TsaSigner:
    """The TSA's private key, its certificate (DER) and the certificates above it."""

    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    cert_der: bytes
    chain_ders: tuple[bytes, ...] = ()

    def __repr__(self) -> str:  # never print a private key into a log
        return f"TsaSigner(cert_der=<{len(self.cert_der)} bytes>, chain={len(self.chain_ders)})"


@dataclass(frozen=True)
class TokenSummary:
    """What a TimeStampResp says, for people (`tide`): it is not verified here."""

    status: int
    failure_info: tuple[str, ...] = ()
    status_text: str | None = None
    gen_time_ms: int | None = None
    serial: int | None = None
    imprint: bytes | None = None
    hash_alg: str | None = None
    policy: str | None = None
    nonce: int | None = None
    deposit_index: int | None = None


class TimestampFormatError(Rejected):
    """A time-stamp response or token that does not decode."""

    code = "bad_timestamp"


class _TimeStampResp(tsp.TimeStampResp):  # type: ignore[misc]
    """asn1crypto makes timeStampToken mandatory; section 2.4.2 has it OPTIONAL and a
    rejection must leave it out (that is why a plain tsp.TimeStampResp cannot be one)."""

    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


class _AlgorithmIdentifier(core.Sequence):  # type: ignore[misc]
    """AlgorithmIdentifier (RFC 5280 4.1.1.2) with any parameters. Not asn1crypto's
    DigestAlgorithm: it fails to parse SHA-2 with parameters other than NULL (we would
    say badDataFormat where OpenSSL's TSA says badAlg) and adds NULL to every SHA-2 it
    builds (we echo absent parameters as absent)."""

    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("algorithm", core.ObjectIdentifier),
        ("parameters", core.Any, {"optional": True}),
    ]


class _MessageImprint(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("hash_algorithm", _AlgorithmIdentifier),
        ("hashed_message", core.OctetString),
    ]


class _TimeStampReq(core.Sequence):  # type: ignore[misc]
    """TimeStampReq (section 2.4.1) over `_MessageImprint`; otherwise asn1crypto's."""

    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("version", core.Integer),
        ("message_imprint", _MessageImprint),
        ("req_policy", core.ObjectIdentifier, {"optional": True}),
        ("nonce", core.Integer, {"optional": True}),
        ("cert_req", core.Boolean, {"default": False}),
        ("extensions", tsp.Extensions, {"implicit": 0, "optional": True}),
    ]


# --- requests -------------------------------------------------------------------------
def parse_request(der: bytes, *, accepted_policies: frozenset[str]) -> TimeStampRequest | Rejection:
    """The request in `der`, or why we refuse it (in the failure info OpenSSL's own TSA
    gives for the same fault). Never raises."""
    if len(der) > MAX_REQUEST_BYTES:
        return Rejection("badRequest", f"request is {len(der)} bytes; the limit is "
                                       f"{MAX_REQUEST_BYTES}")
    try:
        request = _TimeStampReq.load(der, strict=True)
        fields = request.native  # asn1crypto parses lazily: this parses everything
        canonical = request.dump(force=True) == der
        algorithm = request["message_imprint"]["hash_algorithm"]
        hash_oid, params_der = algorithm["algorithm"].dotted, algorithm["parameters"].dump()
        policy = request["req_policy"].dotted if fields["req_policy"] is not None else None
    except _DECODE_ERRORS:
        return Rejection("badDataFormat", "request is not a DER TimeStampReq")
    if not canonical:
        return Rejection("badDataFormat", "request is not DER (BER, or a DEFAULT encoded)")
    if fields["version"] != 1:
        return Rejection("badRequest", f"request version is {_quoted(fields['version'])}, "
                                       "not v1")
    if fields["extensions"] is not None:
        return Rejection("unacceptedExtension", "this TSA accepts no request extensions")
    return _check_fields(fields, hash_oid, params_der, policy, accepted_policies)


def _check_fields(fields: Any, hash_oid: str, params_der: bytes, policy: str | None,
                  accepted_policies: frozenset[str]) -> TimeStampRequest | Rejection:
    hash_alg = HASH_OIDS.get(hash_oid)
    if hash_alg is None:
        return Rejection("badAlg", f"hash algorithm {_quoted(hash_oid)} is not one of "
                                   f"{', '.join(HASH_BYTES)}")
    if params_der not in (b"", _DER_NULL):
        return Rejection("badAlg", "hash algorithm parameters must be absent or NULL")
    imprint: bytes = fields["message_imprint"]["hashed_message"]
    if len(imprint) != HASH_BYTES[hash_alg]:
        return Rejection("badDataFormat", f"a {hash_alg} imprint is {HASH_BYTES[hash_alg]} "
                                          f"bytes, not {len(imprint)}")
    if policy is not None and policy not in accepted_policies:
        return Rejection("unacceptedPolicy", f"policy {_quoted(policy)} is not this TSA's")
    nonce: int | None = fields["nonce"]
    if nonce is not None and not 0 <= nonce < 1 << MAX_NONCE_BITS:
        return Rejection("badRequest", f"nonce must be a non-negative integer of at most "
                                       f"{MAX_NONCE_BITS} bits")
    return TimeStampRequest(hash_alg=hash_alg, imprint=imprint, nonce=nonce,
                            cert_req=bool(fields["cert_req"]), policy=policy,
                            null_params=params_der == _DER_NULL)


def _quoted(value: object) -> str:
    text = str(value)
    return text if len(text) <= MAX_QUOTED_CHARS else text[:MAX_QUOTED_CHARS - 3] + "..."


# --- responses ------------------------------------------------------------------------
def rejection_response(rejection: Rejection) -> bytes:
    """A DER TimeStampResp refusing a request: status 2 (rejection), the text as the
    statusString and the failure as the one bit of failInfo; no token."""
    invariant(rejection.status == REJECTION, f"a rejection has status {rejection.status}")
    invariant(0 < len(rejection.text) <= MAX_STATUS_TEXT_CHARS,
              f"rejection text of {len(rejection.text)} characters")
    status = tsp.PKIStatusInfo({
        "status": "rejection",
        "status_string": [rejection.text],
        # A BIT STRING with named bits: asn1crypto takes the set of the bits' names.
        "fail_info": {_FAILURE_BITS[rejection.failure_info]},
    })
    der: bytes = _TimeStampResp({"status": status}).dump()
    return der


def granted_response(request: TimeStampRequest, *, serial: int, gen_time_ms: int,
                     policy: str, signer: TsaSigner, accuracy_ms: int | None = None,
                     tsa_name: bool = False, deposit_index: int | None = None) -> bytes:
    """A DER TimeStampResp granting `request` (status 0) with a token signed by `signer`:
    `serial` unique per TSA, `gen_time_ms` when the TSA saw the request, `policy` ours
    (the requested one, if the request named one), the TSA certificate and chain inside
    when the request asked (certReq), `tsa_name` to name the TSA in the token and
    `deposit_index` the chain log index of the imprint's deposit."""
    invariant(0 < serial < 1 << MAX_SERIAL_BITS, f"serial {serial} out of range")
    invariant(0 <= gen_time_ms <= MAX_TIME_MS, f"gen_time_ms {gen_time_ms} out of range")
    invariant(_OID.fullmatch(policy) is not None, f"policy {policy!r} is not an OID")
    invariant(request.policy in (None, policy),
              f"request asked for policy {request.policy}, we stamp under {policy}")
    invariant(accuracy_ms is None or accuracy_ms > 0, f"accuracy {accuracy_ms} ms")
    invariant(deposit_index is None or 0 <= deposit_index <= MAX_DEPOSIT_INDEX,
              f"deposit index {deposit_index} out of range")
    cert = asn1_x509.Certificate.load(signer.cert_der)
    tst_info = _tst_info(request, serial, gen_time_ms, policy, cert, accuracy_ms, tsa_name,
                         deposit_index)
    token = _signed_token(tst_info, request.cert_req, signer, cert)
    der: bytes = _TimeStampResp({"status": {"status": "granted"},
                                 "time_stamp_token": token}).dump()
    return der


def _tst_info(request: TimeStampRequest, serial: int, gen_time_ms: int, policy: str,
              cert: Any, accuracy_ms: int | None, tsa_name: bool,
              deposit_index: int | None) -> Any:
    fields: dict[str, Any] = {
        "version": "v1",
        "policy": policy,
        "message_imprint": tsp.MessageImprint.load(_MessageImprint({
            "hash_algorithm": _echoed_algorithm(request),
            "hashed_message": request.imprint}).dump()),
        "serial_number": serial,
        "gen_time": core.GeneralizedTime(generalized_time(gen_time_ms)),
    }
    if accuracy_ms is not None:
        seconds, millis = divmod(accuracy_ms, 1000)
        # DER leaves out zero parts; section 2.4.2 bounds millis to 1..999.
        fields["accuracy"] = {**({"seconds": seconds} if seconds else {}),
                              **({"millis": millis} if millis else {})}
    if request.nonce is not None:
        fields["nonce"] = request.nonce
    if tsa_name:
        fields["tsa"] = asn1_x509.GeneralName(name="directory_name",
                                              value=cert.subject)
    if deposit_index is not None:
        fields["extensions"] = [{"extn_id": DEPOSIT_INDEX_OID, "critical": False,
                                 "extn_value": core.Integer(deposit_index).dump()}]
    return tsp.TSTInfo(fields)


def _echoed_algorithm(request: TimeStampRequest) -> Any:
    """The request's hash AlgorithmIdentifier, parameters NULL or absent as they came."""
    fields: dict[str, Any] = {"algorithm": _HASH_OID_OF[request.hash_alg]}
    if request.null_params:
        fields["parameters"] = core.Null()
    return _AlgorithmIdentifier(fields)


def _signed_token(tst_info: Any, include_certs: bool, signer: TsaSigner, cert: Any) -> Any:
    tst_der: bytes = tst_info.dump()
    signed_attrs = cms.CMSAttributes([
        {"type": "content_type", "values": ["tst_info"]},
        {"type": "message_digest", "values": [hashlib.sha256(tst_der).digest()]},
        {"type": "signing_certificate_v2", "values": [{"certs": [{
            # hashAlgorithm left out: its DEFAULT is SHA-256, and DER omits defaults.
            "cert_hash": hashlib.sha256(signer.cert_der).digest(),
            "issuer_serial": {
                "issuer": [asn1_x509.GeneralName(name="directory_name", value=cert.issuer)],
                "serial_number": cert.serial_number,
            },
        }]}]},
    ])
    # The signature covers the attributes' DER as a SET OF (RFC 5652 5.4), which the
    # SetOf dump is: asn1crypto sorts a SET OF's elements as DER requires.
    signature, signature_algorithm = _sign(signer.key, signed_attrs.dump())
    signer_info = {
        "version": "v1",
        "sid": cms.SignerIdentifier(name="issuer_and_serial_number", value={
            "issuer": cert.issuer, "serial_number": cert.serial_number}),
        "digest_algorithm": {"algorithm": _HASH_OID_OF["sha256"]},
        "signed_attrs": signed_attrs,
        "signature_algorithm": {"algorithm": signature_algorithm},
        "signature": signature,
    }
    signed_data: dict[str, Any] = {
        "version": "v3",  # RFC 5652 5.1: v3 because eContentType is not id-data
        "digest_algorithms": [{"algorithm": _HASH_OID_OF["sha256"]}],
        "encap_content_info": {"content_type": "tst_info",
                               "content": core.ParsableOctetString(tst_der)},
        "signer_infos": [signer_info],
    }
    if include_certs:
        # Section 2.4.1: with certReq the TSA's certificate MUST be there; the chain
        # above it MAY be, and saves the verifier looking for it. CertificateSet is a
        # SET OF: asn1crypto sorts it (DER), so the order is not the chain's.
        signed_data["certificates"] = [asn1_x509.Certificate.load(der)
                                       for der in (signer.cert_der, *signer.chain_ders)]
    return cms.ContentInfo({"content_type": "signed_data",
                            "content": cms.SignedData(signed_data)})


def ecdsa_algorithm() -> ec.ECDSA:
    """ECDSA over SHA-256 with RFC 6979 nonces: the token is a function of its inputs.
    Raises UnsupportedAlgorithm where cryptography's OpenSSL is older than 3.2
    (load_tsa_signer asks first, so a TSA fails at start, not at its first request)."""
    return ec.ECDSA(hashes.SHA256(), deterministic_signing=True)


def _sign(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
          data: bytes) -> tuple[bytes, str]:
    """The signature and its algorithm's asn1crypto name, always over SHA-256."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ecdsa_algorithm()), "sha256_ecdsa"
    return key.sign(data, padding.PKCS1v15(), hashes.SHA256()), "sha256_rsa"


def generalized_time(time_ms: int) -> str:
    """`time_ms` as DER GeneralizedTime text: UTC, with the milliseconds' trailing zeros
    removed and no fraction for whole seconds (section 2.4.2)."""
    iso = iso_utc(time_ms)  # 2025-01-01T12:00:00.500Z
    whole, fraction = iso[:-1].split(".")
    fraction = fraction.rstrip("0")
    digits = whole.replace("-", "").replace(":", "").replace("T", "")
    return f"{digits}.{fraction}Z" if fraction else f"{digits}Z"


# --- reading tokens -------------------------------------------------------------------
def describe_token(resp_der: bytes) -> TokenSummary:
    """What a DER TimeStampResp says: its status and, when granted, its TSTInfo. The
    token's signature is NOT checked (use `openssl ts -verify` or a verifier)."""
    if len(resp_der) > MAX_RESPONSE_BYTES:
        raise TimestampFormatError(f"response is {len(resp_der)} bytes; the limit is "
                                   f"{MAX_RESPONSE_BYTES}")
    try:
        resp = _TimeStampResp.load(resp_der, strict=True)
        status = resp["status"].native
        token = resp["time_stamp_token"]
        token_der = None if isinstance(token, core.Void) else token.dump()
    except _DECODE_ERRORS as exc:
        raise TimestampFormatError(f"not a DER TimeStampResp: {exc}") from None
    summary = TokenSummary(
        status=_status_number(status["status"]),
        failure_info=_failure_names(status["fail_info"]),
        status_text="; ".join(status["status_string"] or []) or None,
    )
    if token_der is None:
        return summary
    tst = _tst_info_of(token_der)
    imprint = tst["message_imprint"]
    return TokenSummary(
        status=summary.status, failure_info=summary.failure_info,
        status_text=summary.status_text,
        gen_time_ms=tst["gen_time_ms"], serial=tst["serial_number"],
        imprint=imprint["hashed_message"],
        hash_alg=HASH_OIDS.get(imprint["hash_oid"], imprint["hash_oid"]),
        policy=tst["policy"], nonce=tst["nonce"], deposit_index=tst["deposit_index"],
    )


def parse_token_deposit_index(token_der: bytes) -> int | None:
    """The chain log index a TimeStampToken (DER ContentInfo) names in its
    `DEPOSIT_INDEX_OID` extension, or None when it names none. Not verified here."""
    index: int | None = _tst_info_of(token_der)["deposit_index"]
    return index


def _tst_info_of(token_der: bytes) -> dict[str, Any]:
    """The TSTInfo fields of a token, with genTime in ms and the deposit index decoded."""
    if len(token_der) > MAX_RESPONSE_BYTES:
        raise TimestampFormatError(f"token is {len(token_der)} bytes; the limit is "
                                   f"{MAX_RESPONSE_BYTES}")
    try:
        token = cms.ContentInfo.load(token_der, strict=True)
        if token["content_type"].native != "signed_data":
            raise TimestampFormatError("token is not a CMS SignedData")
        encap = token["content"]["encap_content_info"]
        if encap["content_type"].native != "tst_info":
            raise TimestampFormatError("token's content is not a TSTInfo")
        tst = encap["content"].parsed
        fields = tst.native
        hash_oid = tst["message_imprint"]["hash_algorithm"]["algorithm"].dotted
        policy = tst["policy"].dotted
        extensions = [(ext["extn_id"].dotted, ext["extn_value"].native)
                      for ext in tst["extensions"]] if fields["extensions"] else []
    except _DECODE_ERRORS as exc:
        raise TimestampFormatError(f"not a DER TimeStampToken: {exc}") from None
    return {
        "message_imprint": {"hash_oid": hash_oid,
                            "hashed_message": fields["message_imprint"]["hashed_message"]},
        "serial_number": fields["serial_number"], "policy": policy, "nonce": fields["nonce"],
        "gen_time_ms": _ms_of(fields["gen_time"]),
        "deposit_index": _deposit_index(extensions),
    }


def _deposit_index(extensions: list[tuple[str, bytes]]) -> int | None:
    values = [value for oid, value in extensions if oid == DEPOSIT_INDEX_OID]
    if not values:
        return None
    if len(values) > 1:
        raise TimestampFormatError("token names its deposit index twice")
    try:
        number = core.Integer.load(values[0], strict=True)
        index = number.native
        canonical = number.dump(force=True) == values[0]
    except _DECODE_ERRORS:
        raise TimestampFormatError("deposit index is not a DER INTEGER") from None
    if not canonical or not 0 <= index <= MAX_DEPOSIT_INDEX:
        raise TimestampFormatError(f"deposit index is not a log index: {values[0].hex()}")
    return int(index)


def _ms_of(moment: Any) -> int:
    """A GeneralizedTime (asn1crypto gives an aware datetime) as ms since the epoch."""
    try:
        offset_s = int(moment.utcoffset().total_seconds())
        days = moment.toordinal() - _ORDINAL_1970_01_01
    except (AttributeError, TypeError, ValueError):  # year 0: asn1crypto's own type
        raise TimestampFormatError(f"genTime {moment} is out of range") from None
    seconds: int = ((days * 24 + moment.hour) * 60 + moment.minute) * 60 + moment.second
    micros: int = moment.microsecond
    return (seconds - offset_s) * 1000 + micros // 1000


def _status_number(status: Any) -> int:
    names = {name: number for number, name in tsp.PKIStatus._map.items()}
    return names[status] if isinstance(status, str) else int(status)


def _failure_names(fail_info: Any) -> tuple[str, ...]:
    rfc_names = {bit: name for name, bit in _FAILURE_BITS.items()}  # asn1crypto's -> RFC's
    return tuple(sorted(rfc_names.get(bit, str(bit)) for bit in fail_info or ()))
