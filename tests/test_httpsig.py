"""Signed reads (identity/httpsig.py, client/auth.py): RFC 9421 vectors, interop with the
`http-message-signatures` library, every refusal of the profile, the replay guard, the
SDK's auth over fake and real transports, and a property over random URLs."""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import inspect
import json
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    MappingKeyResolver,
    algorithms,
)
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tidechain.client.auth import MemberSignatures
from tidechain.core import errors
from tidechain.core.crypto import SigningKey
from tidechain.core.errors import Busy
from tidechain.core.limits import (
    DEFAULT_SIGNATURE_LIFETIME_S,
    MAX_CLOCK_SKEW_S,
    MAX_NONCE_CHARS,
    MAX_SIGNATURE_FIELD_BYTES,
    MAX_SIGNATURE_LIFETIME_S,
)
from tidechain.identity.httpsig import (
    COVERED_COMPONENTS,
    LABEL,
    TAG,
    BadSignature,
    NonceBook,
    SignedBy,
    UnsignableRequest,
    has_signature,
    sign_headers,
    sign_standard,
    verify_request,
    verify_standard,
)

VECTORS = Path(__file__).parent / "vectors" / "rfc9421"
KEY = SigningKey(hashlib.sha256(b"httpsig test key").digest())
OTHER = SigningKey(hashlib.sha256(b"httpsig other key").digest())
NOW = 1_760_000_000
URL = "http://127.0.0.1:8080/v1/apps/x/y?a=1"


def signed(method: str = "GET", url: str = URL, *, key: SigningKey = KEY, created_s: int = NOW,
           nonce: str = "nonce-1", lifetime_s: int = DEFAULT_SIGNATURE_LIFETIME_S
           ) -> dict[str, str]:
    return sign_headers(method, url, {}, key, created_s=created_s, nonce=nonce,
                        lifetime_s=lifetime_s)


def profile_params(**changes: Any) -> dict[str, Any]:
    """Our profile's parameters, some changed or (value None) removed."""
    params: dict[str, Any] = {"created": NOW, "expires": NOW + 60, "nonce": "nonce-1",
                              "keyid": KEY.public_key.hex(), "alg": "ed25519", "tag": TAG}
    params.update(changes)
    return {name: value for name, value in params.items() if value is not None}


def signed_with(covered: tuple[str, ...] = COVERED_COMPONENTS, *, url: str = URL,
                headers: dict[str, str] | None = None, **changes: Any) -> dict[str, str]:
    """A valid RFC 9421 signature by KEY that breaks the profile as told: the policy, not
    the cryptography, must be what refuses it."""
    return sign_standard("GET", url, headers or {}, KEY.seed, covered=covered,
                         params=profile_params(**changes), label=LABEL)


def refusal(headers: dict[str, str] | list[tuple[str, str]], *, method: str = "GET",
            url: str = URL, now_s: int = NOW) -> str:
    with pytest.raises(BadSignature) as refused:
        verify_request(method, url, headers, now_s=now_s)
    assert refused.value.http_status == 401
    assert refused.value.code == "bad_signature"
    return refused.value.reason


@dataclass
class LibraryRequest:
    """The request shape `http-message-signatures` reads: method, url, headers."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


# --- the public API is a contract with the node and the SDK -----------------------------


def test_the_public_api_keeps_its_names_and_arguments() -> None:
    assert list(inspect.signature(sign_headers).parameters) == [
        "method", "url", "headers", "key", "created_s", "nonce", "lifetime_s"]
    assert list(inspect.signature(verify_request).parameters) == [
        "method", "url", "headers", "now_s"]
    assert list(inspect.signature(verify_standard).parameters) == [
        "method", "url", "headers", "public_key", "now_s"]
    assert list(inspect.signature(sign_standard).parameters) == [
        "method", "url", "headers", "private_seed", "covered", "params", "label"]
    assert list(inspect.signature(NonceBook.admit).parameters) == ["self", "signed", "now_s"]
    assert issubclass(BadSignature, errors.BadSignature)  # caught as any bad signature
    assert issubclass(BadSignature, errors.Rejected)
    assert (BadSignature.http_status, BadSignature.code) == (401, "bad_signature")


def test_a_signed_request_verifies_and_says_who_signed_it() -> None:
    headers = signed()
    assert set(headers) == {"Signature-Input", "Signature"}
    assert headers["Signature-Input"] == (
        'tide=("@method" "@authority" "@path" "@query");created=1760000000;'
        f'keyid="{KEY.public_key.hex()}";alg="ed25519";expires=1760000060;'
        'nonce="nonce-1";tag="tidechain"')
    assert verify_request("GET", URL, headers, now_s=NOW + 5) == SignedBy(
        key=KEY.public_key, created_s=NOW, expires_s=NOW + 60, nonce="nonce-1")


def test_header_names_are_case_insensitive_and_pairs_are_accepted() -> None:
    pairs = [(name.lower(), value) for name, value in signed().items()]
    assert verify_request("GET", URL, pairs, now_s=NOW).key == KEY.public_key
    assert has_signature(dict(pairs)) and has_signature([("SIGNATURE", "x")])
    assert not has_signature({"Authorization": "x", "Host": "h"})


def test_the_order_of_the_covered_components_is_free() -> None:
    """RFC 9421 signs the components in the order the signer lists them; the profile
    fixes the set, not the order (the SDK always sends COVERED_COMPONENTS' order)."""
    headers = signed_with(tuple(reversed(COVERED_COMPONENTS)))
    assert verify_request("GET", URL, headers, now_s=NOW).key == KEY.public_key


# --- RFC 9421 Appendix B.2.6 ------------------------------------------------------------


def rfc_vector() -> dict[str, Any]:
    vector: dict[str, Any] = json.loads((VECTORS / "b26.json").read_text())
    return vector


def rfc_seed(vector: dict[str, Any]) -> bytes:
    private = serialization.load_pem_private_key(
        vector["key"]["private_key_pem"].encode(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    return private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())


def rfc_public(vector: dict[str, Any]) -> bytes:
    public = serialization.load_pem_public_key(vector["key"]["public_key_pem"].encode())
    assert isinstance(public, Ed25519PublicKey)
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def rfc_headers(vector: dict[str, Any], **changed: str) -> list[tuple[str, str]]:
    headers = [(name, changed.get(name, value)) for name, value in vector["request"]["headers"]]
    return [*headers, ("Signature-Input", vector["signature_input"]),
            ("Signature", vector["signature"])]


def test_the_rfc_vector_is_self_consistent() -> None:
    """Before trusting the vector: the private key is the public key's, and the RFC's
    signature verifies over the RFC's signature base with cryptography alone."""
    vector = rfc_vector()
    seed, public = rfc_seed(vector), rfc_public(vector)
    assert SigningKey(seed).public_key == public
    base = "\n".join(vector["signature_base_lines"]).encode()
    signature = base64.b64decode(vector["signature"].split(":")[1])
    Ed25519PublicKey.from_public_bytes(public).verify(signature, base)


def test_the_library_builds_the_rfc_signature_base() -> None:
    vector = rfc_vector()
    request = LibraryRequest("POST", vector["request"]["url"],
                             dict(vector["request"]["headers"]))
    prepared = HTTPMessageSigner(signature_algorithm=algorithms.ED25519).prepare(
        request, key_id=vector["params"]["keyid"], include_alg=False, label=vector["label"],
        created=datetime.datetime.fromtimestamp(vector["params"]["created"], tz=datetime.UTC),
        covered_component_ids=vector["covered"], use_existing_digest=True)
    assert prepared.signature_base == "\n".join(vector["signature_base_lines"]).encode()


def test_verify_standard_accepts_the_rfc_message() -> None:
    vector = rfc_vector()
    covered = verify_standard("POST", vector["request"]["url"], rfc_headers(vector),
                              rfc_public(vector))
    assert covered == [f'"{name}"' for name in vector["covered"]]


def test_sign_standard_reproduces_the_rfc_signature_exactly() -> None:
    vector = rfc_vector()
    headers = sign_standard("POST", vector["request"]["url"], dict(vector["request"]["headers"]),
                            rfc_seed(vector), covered=vector["covered"],
                            params=vector["params"], label=vector["label"])
    assert headers == {"Signature-Input": vector["signature_input"],
                       "Signature": vector["signature"]}


@pytest.mark.parametrize("name, value", [("Date", "Tue, 20 Apr 2021 02:07:56 GMT"),
                                         ("Content-Type", "application/jsonx"),
                                         ("Content-Length", "19")])
def test_altering_a_covered_header_of_the_rfc_message_fails(name: str, value: str) -> None:
    vector = rfc_vector()
    with pytest.raises(BadSignature, match="does not verify: wrong key or altered request"):
        verify_standard("POST", vector["request"]["url"], rfc_headers(vector, **{name: value}),
                        rfc_public(vector))


def test_what_the_rfc_example_leaves_uncovered_can_change_unnoticed() -> None:
    """Why our profile covers "@query": B.2.6 does not, so its query can be swapped."""
    vector = rfc_vector()
    url = vector["request"]["url"].replace("Pet=dog", "Pet=cat")
    assert verify_standard("POST", url, rfc_headers(vector), rfc_public(vector))


def test_verify_standard_checks_time_only_at_the_time_it_is_given() -> None:
    vector = rfc_vector()
    created = vector["params"]["created"]
    url, headers, public = vector["request"]["url"], rfc_headers(vector), rfc_public(vector)
    assert verify_standard("POST", url, headers, public, now_s=created - MAX_CLOCK_SKEW_S)
    with pytest.raises(BadSignature, match=r"created.*future"):
        verify_standard("POST", url, headers, public, now_s=created - MAX_CLOCK_SKEW_S - 1)


def test_the_injected_clock_replaces_the_library_s_wall_clock() -> None:
    """Signed for the year 2100 and checked at that time: the library's own check, which
    reads the wall clock, would call it "in the future"."""
    later = 4_102_444_800
    headers = signed(created_s=later)
    assert verify_request("GET", URL, headers, now_s=later).created_s == later
    assert verify_standard("GET", URL, headers, KEY.public_key, now_s=later)
    assert "future" in refusal(headers, now_s=NOW)


def test_verify_request_refuses_the_rfc_message_naming_what_the_profile_misses() -> None:
    vector = rfc_vector()
    reason = refusal(rfc_headers(vector), method="POST", url=vector["request"]["url"],
                     now_s=vector["params"]["created"])
    assert reason == ("signature lacks parameters the tidechain profile requires: "
                      "expires, nonce, alg, tag")


# --- interop with the library used directly ---------------------------------------------


def test_a_request_signed_by_the_library_itself_verifies() -> None:
    request = LibraryRequest("GET", URL, {"Host": "127.0.0.1:8080"})
    keyid = KEY.public_key.hex()
    resolver = MappingKeyResolver(
        public_keys={}, private_keys={keyid: Ed25519PrivateKey.from_private_bytes(KEY.seed)})
    HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=resolver).sign(
        request, key_id=keyid, label="anything", tag=TAG, nonce="from-the-library",
        created=datetime.datetime.fromtimestamp(NOW, tz=datetime.UTC),
        expires=datetime.datetime.fromtimestamp(NOW + 120, tz=datetime.UTC),
        covered_component_ids=COVERED_COMPONENTS)
    assert verify_request("GET", URL, request.headers, now_s=NOW) == SignedBy(
        key=KEY.public_key, created_s=NOW, expires_s=NOW + 120, nonce="from-the-library")


def test_our_headers_verify_with_the_library_s_own_verifier() -> None:
    now_s = int(time.time())  # the stock verifier reads the wall clock
    request = LibraryRequest("GET", URL, signed(created_s=now_s))
    resolver = MappingKeyResolver(
        public_keys={KEY.public_key.hex(): Ed25519PublicKey.from_public_bytes(KEY.public_key)},
        private_keys={})
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=resolver)
    (result,) = verifier.verify(request, expect_tag=TAG, require_components=COVERED_COMPONENTS)
    assert result.label == LABEL
    assert result.parameters["keyid"] == KEY.public_key.hex()
    assert result.covered_components['"@query"'] == "?a=1"
    assert result.covered_components['"@authority"'] == "127.0.0.1:8080"


# --- every refusal, one at a time -------------------------------------------------------


def test_refuses_a_request_without_signature_headers() -> None:
    assert refusal({"Host": "127.0.0.1:8080"}).startswith("missing Signature-Input header")


def test_refuses_a_signature_input_without_a_signature() -> None:
    headers = signed()
    del headers["Signature"]
    assert refusal(headers).startswith("missing Signature header")


def test_refuses_a_malformed_signature_input() -> None:
    headers = signed() | {"Signature-Input": 'tide=("@method"'}
    assert refusal(headers).startswith("malformed Signature-Input header")


def test_refuses_a_malformed_signature() -> None:
    headers = signed() | {"Signature": "tide=:not base64!:"}
    assert refusal(headers).startswith("malformed Signature header")


def test_refuses_an_empty_signature_dictionary() -> None:
    assert refusal(signed() | {"Signature": " "}) == "Signature header holds no signature"


def test_refuses_an_oversized_signature_input() -> None:
    headers = signed()
    headers["Signature-Input"] += ";x=" + '"' + "a" * MAX_SIGNATURE_FIELD_BYTES + '"'
    assert refusal(headers) == (
        f"Signature-Input header is longer than {MAX_SIGNATURE_FIELD_BYTES} bytes")


def test_refuses_two_signatures() -> None:
    first, second = signed(), signed_with(nonce="nonce-2")
    both = [("Signature-Input", first["Signature-Input"]),
            ("Signature-Input", second["Signature-Input"].replace("tide=", "tide2=")),
            ("Signature", first["Signature"]),
            ("Signature", second["Signature"].replace("tide=", "tide2="))]
    assert refusal(both).startswith("more than one signature")


def test_refuses_a_repeated_label() -> None:
    headers = signed()
    headers["Signature-Input"] += ", " + headers["Signature-Input"]
    assert "appears twice" in refusal(headers)


def test_refuses_labels_that_do_not_match() -> None:
    headers = signed()
    headers["Signature"] = headers["Signature"].replace("tide=", "other=")
    assert refusal(headers) == "Signature-Input and Signature name different labels"


def test_refuses_a_signature_input_that_is_not_an_inner_list() -> None:
    assert "is not an inner list" in refusal(signed() | {"Signature-Input": 'tide="x"'})


def test_refuses_a_signature_that_is_not_a_byte_sequence() -> None:
    assert "is not a byte sequence" in refusal(signed() | {"Signature": "tide=1"})


def test_refuses_another_application_s_tag() -> None:
    assert refusal(signed_with(tag="someone-else")) == (
        "tag is 'someone-else', not 'tidechain': not a tidechain signed read")


@pytest.mark.parametrize("missing", ["created", "expires", "nonce", "keyid", "alg", "tag"])
def test_refuses_a_missing_parameter(missing: str) -> None:
    headers = signed()
    parts = headers["Signature-Input"].split(";")
    headers["Signature-Input"] = ";".join(p for p in parts if not p.startswith(missing + "="))
    assert refusal(headers) == (
        f"signature lacks parameters the tidechain profile requires: {missing}")


def test_refuses_another_algorithm() -> None:
    headers = signed()
    headers["Signature-Input"] = headers["Signature-Input"].replace(
        'alg="ed25519"', 'alg="hmac-sha256"')
    assert refusal(headers) == "alg is 'hmac-sha256'; only 'ed25519' is accepted"


def test_refuses_an_unknown_parameter() -> None:
    headers = signed()
    headers["Signature-Input"] += ';context="x"'
    assert refusal(headers) == "unexpected signature parameters: context"


@pytest.mark.parametrize("old, new, kind", [
    ("created=1760000000", 'created="1760000000"', "'created' must be a structured-field integer"),
    ("expires=1760000060", "expires=?1", "'expires' must be a structured-field integer"),
    ('nonce="nonce-1"', "nonce=nonce-1", "'nonce' must be a structured-field string"),
])
def test_refuses_parameters_of_the_wrong_type(old: str, new: str, kind: str) -> None:
    headers = signed()
    headers["Signature-Input"] = headers["Signature-Input"].replace(old, new)
    assert refusal(headers) == f"signature parameter {kind}"


@pytest.mark.parametrize("keyid", [KEY.public_key.hex().upper(), KEY.public_key.hex()[:-2],
                                   "test-key-ed25519", KEY.public_key.hex()[:-1] + "g"])
def test_refuses_a_keyid_that_is_not_a_member_key(keyid: str) -> None:
    assert refusal(signed_with(keyid=keyid)) == (
        "keyid must be the member's Ed25519 public key as 64 lowercase hex digits")


@pytest.mark.parametrize("missing", COVERED_COMPONENTS)
def test_refuses_a_signature_that_does_not_cover_a_component(missing: str) -> None:
    covered = tuple(c for c in COVERED_COMPONENTS if c != missing)
    assert refusal(signed_with(covered)).startswith(f'signature does not cover "{missing}"')


def test_refuses_a_signature_that_covers_more_than_the_profile() -> None:
    headers = signed_with((*COVERED_COMPONENTS, "date"), headers={"Date": "today"})
    assert refusal(headers | {"Date": "today"}) == (
        "signature covers more than the tidechain profile: date")


def test_refuses_a_component_with_parameters() -> None:
    headers = signed()
    headers["Signature-Input"] = headers["Signature-Input"].replace('"@query"', '"@query";x')
    assert refusal(headers).startswith('signature does not cover "@query"')


def test_refuses_a_signature_created_in_the_future_beyond_the_skew() -> None:
    ahead = signed(created_s=NOW + MAX_CLOCK_SKEW_S)
    assert verify_request("GET", URL, ahead, now_s=NOW)
    too_far = signed(created_s=NOW + MAX_CLOCK_SKEW_S + 1)
    assert refusal(too_far) == (
        f"created {NOW + 31} is 31 s in the future (clock skew allowed: 30 s): "
        "check the reader's clock")


def test_refuses_an_expired_signature_after_the_skew() -> None:
    headers = signed(lifetime_s=60)
    assert verify_request("GET", URL, headers, now_s=NOW + 60 + MAX_CLOCK_SKEW_S)
    assert refusal(headers, now_s=NOW + 60 + MAX_CLOCK_SKEW_S + 1) == (
        f"signature expired 31 s ago (at {NOW + 60}; clock skew allowed: 30 s)")


def test_refuses_a_lifetime_beyond_the_maximum() -> None:
    assert verify_request("GET", URL, signed(lifetime_s=MAX_SIGNATURE_LIFETIME_S), now_s=NOW)
    headers = signed_with(expires=NOW + MAX_SIGNATURE_LIFETIME_S + 1)
    assert refusal(headers) == "signature lifetime 301 s exceeds 300 s"


def test_refuses_expires_not_after_created() -> None:
    assert refusal(signed_with(expires=NOW)) == (
        f"expires {NOW} is not after created {NOW}")


def test_refuses_an_empty_nonce() -> None:
    assert refusal(signed_with(nonce="")) == (
        "nonce is empty: each signed read needs a fresh nonce")


def test_refuses_a_nonce_that_is_too_long() -> None:
    assert verify_request("GET", URL, signed(nonce="n" * MAX_NONCE_CHARS), now_s=NOW)
    assert refusal(signed_with(nonce="n" * (MAX_NONCE_CHARS + 1))) == (
        "nonce is longer than 64 characters")


def test_refuses_a_signature_of_the_wrong_length() -> None:
    assert refusal(signed() | {"Signature": "tide=:AAAA:"}) == (
        "an Ed25519 signature is 64 bytes, not 3")


def test_refuses_a_signature_made_with_another_key() -> None:
    headers = signed(key=OTHER)
    headers["Signature-Input"] = headers["Signature-Input"].replace(
        OTHER.public_key.hex(), KEY.public_key.hex())
    assert refusal(headers) == "signature does not verify: wrong key or altered request"


@pytest.mark.parametrize("method, url", [
    ("POST", URL),                                          # @method
    ("GET", URL.replace(":8080", ":8081")),                 # @authority
    ("GET", URL.replace("127.0.0.1", "127.0.0.2")),         # @authority
    ("GET", URL.replace("/y?", "/z?")),                     # @path
    ("GET", URL.replace("a=1", "a=2")),                     # @query
    ("GET", URL.replace("?a=1", "")),                       # @query: none is "?"
])
def test_refuses_an_altered_request(method: str, url: str) -> None:
    assert refusal(signed(), method=method, url=url) == (
        "signature does not verify: wrong key or altered request")


def test_refuses_a_url_the_rfc_cannot_express() -> None:
    reason = refusal(signed(), url="http://127.0.0.1:8080/v1/x?a=%2")
    assert reason.startswith("signature cannot be checked: Invalid URL")


def test_refuses_a_lowercase_method() -> None:
    assert refusal(signed(), method="get") == (
        "signature cannot be checked: HTTP request method must be an uppercase string")


# --- what @authority, @path and @query resolve to ---------------------------------------


@pytest.mark.parametrize("client_url, server_url", [
    # aiohttp drops an empty query's "?"; httpx keeps it. RFC 9421 section 2.2.7: both "?".
    ("http://127.0.0.1:8080/v1/x?", "http://127.0.0.1:8080/v1/x"),
    # the default port and the host's case are normalised in @authority
    ("http://Node.Example:80/v1/x", "http://node.example/v1/x"),
    ("https://node.example:443/v1/x", "https://node.example/v1/x"),
])
def test_equivalent_urls_resolve_to_the_same_components(client_url: str, server_url: str) -> None:
    assert verify_request("GET", server_url, signed(url=client_url), now_s=NOW)


def test_percent_encoding_is_compared_as_sent() -> None:
    """No decoding: %2F and / are different paths, %41 and A different queries, as the
    node's router sees them."""
    url = "http://127.0.0.1:8080/v1/a%2Fb?q=%41%20b+c&r=%C3%A9"
    headers = signed(url=url)
    assert verify_request("GET", url, headers, now_s=NOW)
    assert "does not verify" in refusal(headers, url=url.replace("a%2Fb", "a/b"))
    assert "does not verify" in refusal(headers, url=url.replace("%41", "A"))


# --- signing refuses what cannot be signed ----------------------------------------------


@pytest.mark.parametrize("method, url, nonce, lifetime_s, reason", [
    ("GET", "http://h/a b", "n", 60, "Invalid URL"),
    ("GET", "/relative/only", "n", 60, "Invalid URL"),
    ("get", URL, "n", 60, "uppercase"),
    ("GET", URL, "", 60, "nonce is empty"),
    ("GET", URL, "n" * 65, 60, "longer than 64"),
    ("GET", URL, "é", 60, "printable ASCII"),
    ("GET", URL, "n", 0, "lifetime must be 1..300 s"),
    ("GET", URL, "n", 301, "lifetime must be 1..300 s"),
])
def test_signing_refuses_what_the_profile_cannot_express(
        method: str, url: str, nonce: str, lifetime_s: int, reason: str) -> None:
    with pytest.raises(UnsignableRequest, match=reason):
        sign_headers(method, url, {}, KEY, created_s=NOW, nonce=nonce, lifetime_s=lifetime_s)


@pytest.mark.parametrize("params, reason", [
    ({"keyid": "k"}, "'created' is required"),
    ({"created": NOW}, "'keyid' is required"),
    ({"created": NOW, "keyid": "k", "alg": "rsa-pss-sha512"}, "only alg='ed25519'"),
    ({"created": NOW, "keyid": "k", "colour": "blue"}, "unknown signature parameters: colour"),
    ({"created": -1, "keyid": "k"}, "whole seconds"),
    ({"created": NOW, "keyid": 7}, "'keyid' must be a string"),
])
def test_sign_standard_refuses_parameters_it_cannot_sign(
        params: dict[str, Any], reason: str) -> None:
    with pytest.raises(UnsignableRequest, match=reason):
        sign_standard("GET", URL, {}, KEY.seed, covered=COVERED_COMPONENTS, params=params,
                      label="x")


def test_any_text_in_the_signature_headers_is_refused_as_a_bad_signature_only() -> None:
    """Never a library exception: whatever a client puts there, the answer is
    BadSignature or (for a harmless re-spelling, e.g. `created=01760000000`) a SignedBy."""
    valid = signed()
    printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
    seen = {"examples": 0}

    @settings(max_examples=300)
    @given(st.sampled_from(["Signature-Input", "Signature"]), st.integers(0, 400),
           st.integers(0, 8), printable, st.booleans())
    def fuzz(name: str, at: int, cut: int, text: str, replace_all: bool) -> None:
        original = valid[name]
        at = min(at, len(original))
        value = text if replace_all else original[:at] + text + original[at + cut:]
        seen["examples"] += 1
        try:
            verify_request("GET", URL, valid | {name: value}, now_s=NOW)
            event("still verifies")
        except BadSignature as refused:
            event(refused.reason.split(":")[0][:40])

    fuzz()
    assert seen["examples"] > 0


# --- the replay guard -------------------------------------------------------------------


def signed_by(nonce: str = "n1", *, key: bytes = KEY.public_key, expires_s: int = NOW + 60
              ) -> SignedBy:
    return SignedBy(key=key, created_s=expires_s - 60, expires_s=expires_s, nonce=nonce)


def test_a_nonce_is_admitted_once() -> None:
    book = NonceBook()
    book.admit(signed_by(), NOW)
    with pytest.raises(BadSignature, match=r"^replayed: this signature's nonce was already used$"):
        book.admit(signed_by(), NOW + 1)
    book.admit(signed_by(key=OTHER.public_key), NOW)  # the same nonce, another member
    assert len(book) == 2


def test_a_nonce_is_remembered_until_its_signature_could_no_longer_verify() -> None:
    book = NonceBook()
    book.admit(signed_by(expires_s=NOW + 60), NOW)
    last_acceptable = NOW + 60 + MAX_CLOCK_SKEW_S  # verify_request still accepts it then
    book.admit(signed_by("other"), last_acceptable)
    with pytest.raises(BadSignature, match="replayed"):
        book.admit(signed_by(expires_s=NOW + 60), last_acceptable)
    book.admit(signed_by("later", expires_s=NOW + 200), last_acceptable + 1)
    assert len(book) == 1  # both entries that expired were forgotten
    with pytest.raises(BadSignature, match="signature expired 31 s ago"):
        book.admit(signed_by(expires_s=NOW + 60), last_acceptable + 1)


def test_a_clock_stepping_back_cannot_revive_a_forgotten_nonce() -> None:
    book = NonceBook()
    book.admit(signed_by(expires_s=NOW + 60), NOW)
    book.admit(signed_by("tick", expires_s=NOW + 200), NOW + 60 + MAX_CLOCK_SKEW_S + 1)
    assert len(book) == 1  # the first nonce is forgotten
    with pytest.raises(BadSignature, match="expired"):
        book.admit(signed_by(expires_s=NOW + 60), NOW)  # the clock went back


def test_a_full_book_refuses_with_busy_instead_of_forgetting() -> None:
    book = NonceBook(capacity=2)
    book.admit(signed_by("a", expires_s=NOW + 10), NOW)
    book.admit(signed_by("b", expires_s=NOW + 60), NOW)
    with pytest.raises(Busy) as busy:
        book.admit(signed_by("c"), NOW + 5)
    assert busy.value.reason == "too many signed requests in flight; retry shortly"
    assert busy.value.http_status == 503
    # "a" can be forgotten once its expiry is more than the skew ago: at NOW + 41
    assert busy.value.retry_after_s == NOW + 10 + MAX_CLOCK_SKEW_S + 1 - (NOW + 5)
    with pytest.raises(BadSignature, match="replayed"):  # nothing was evicted
        book.admit(signed_by("a", expires_s=NOW + 10), NOW + 5)
    book.admit(signed_by("c"), NOW + 5 + busy.value.retry_after_s)
    assert len(book) == 2


# --- the SDK's auth ---------------------------------------------------------------------


def test_member_signatures_sign_every_request_with_a_fresh_nonce() -> None:
    nonces = iter(f"nonce-{n}" for n in range(100))
    book, answers = NonceBook(), []

    def node(request: httpx.Request) -> httpx.Response:
        who = verify_request(request.method, str(request.url), request.headers.items(),
                             now_s=NOW)
        book.admit(who, NOW)
        answers.append((request.url.path, who.nonce))
        return httpx.Response(200, json={"key": who.key.hex()})

    auth = MemberSignatures(KEY, clock_s=lambda: NOW + 0.9, nonce=lambda: next(nonces))
    with httpx.Client(transport=httpx.MockTransport(node), base_url="http://127.0.0.1:8080",
                      auth=auth) as client:
        assert client.get("/v1/apps/x/y", params={"a": "1"}).json() == {
            "key": KEY.public_key.hex()}
        assert client.get("/v1/apps/x/y", params={"a": "1"}).status_code == 200
        assert client.get("/v1/new?x=%2F").status_code == 200
        assert client.post("/v1/q", content=b"body").status_code == 200
    assert answers == [("/v1/apps/x/y", "nonce-0"), ("/v1/apps/x/y", "nonce-1"),
                       ("/v1/new", "nonce-2"), ("/v1/q", "nonce-3")]


def test_a_followed_redirect_is_not_signed_again() -> None:
    """httpx runs an auth flow once per `send`, redirects included: a redirected request
    carries the first URL's signature and the node refuses it. The node's API does not
    redirect and the SDK does not follow redirects (httpx's default)."""
    def node(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/old":
            return httpx.Response(302, headers={"Location": "/new"})
        try:
            verify_request(request.method, str(request.url), request.headers, now_s=NOW)
        except BadSignature as refused:
            return httpx.Response(401, text=refused.reason)
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(node), base_url="http://127.0.0.1:8080",
                      auth=MemberSignatures(KEY, clock_s=lambda: NOW)) as client:
        assert client.get("/old").status_code == 302
        followed = client.get("/old", follow_redirects=True)
    assert (followed.status_code, followed.text) == (
        401, "signature does not verify: wrong key or altered request")


def test_member_signatures_use_the_default_nonce_and_lifetime() -> None:
    seen: list[SignedBy] = []

    def node(request: httpx.Request) -> httpx.Response:
        seen.append(verify_request(request.method, str(request.url), request.headers,
                                   now_s=NOW))
        return httpx.Response(204)

    with httpx.Client(transport=httpx.MockTransport(node),
                      auth=MemberSignatures(KEY, clock_s=lambda: NOW)) as client:
        client.get("http://127.0.0.1:8080/v1/x")
        client.get("http://127.0.0.1:8080/v1/x")
    assert [s.expires_s - s.created_s for s in seen] == [DEFAULT_SIGNATURE_LIFETIME_S] * 2
    assert seen[0].nonce != seen[1].nonce and len(seen[0].nonce) == 22


def test_signed_reads_verify_behind_a_real_aiohttp_server() -> None:
    """The node's call, `verify_request(request.method, str(request.url),
    request.headers.items(), ...)`, against what httpx really sends: aiohttp rebuilds
    the URL from the request line and the Host header."""
    paths = ["/v1/apps/x/y?a=1", "/v1/apps/x/y", "/v1/apps/x/y?", "/v1/a%2Fb?q=%2F%20x+y",
             "/v1/p%7Eq?x=%7E&x=2", "/v1/x?name=%C3%A9t%C3%A9&empty="]

    async def run() -> list[tuple[int, str]]:
        async def handler(request: web.Request) -> web.Response:
            try:
                who = verify_request(request.method, str(request.url),
                                     request.headers.items(), now_s=NOW)
            except BadSignature as refused:
                return web.Response(status=401, text=f"{request.url}: {refused.reason}")
            return web.Response(text=who.key.hex())

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with httpx.AsyncClient(auth=MemberSignatures(KEY, clock_s=lambda: NOW),
                                         base_url=f"http://127.0.0.1:{port}") as client:
                answers = [await client.get(path) for path in paths]
                answers.append(await client.get("/v1/x", params={"q": "é / ?&="}))
                answers.append(await client.delete("/v1/x"))
        finally:
            await runner.cleanup()
        return [(answer.status_code, answer.text) for answer in answers]

    for status, text in asyncio.run(run()):
        assert (status, text) == (200, KEY.public_key.hex())


# --- a property over random requests ----------------------------------------------------


PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
AUTHORITIES = ["127.0.0.1:8080", "node.example", "node.example:8443", "[::1]:8080"]


def _encoded(text: str, safe: str) -> str:
    return urllib.parse.quote(text, safe=safe)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, int, int]:
    """(method, url, where the path starts, where the query text starts or -1)."""
    method = draw(st.from_regex(r"[A-Z]{1,10}", fullmatch=True))
    segments = draw(st.lists(st.text(PRINTABLE, max_size=10), max_size=4))
    path = "/" + "/".join(_encoded(s, "!$&'()*+,;=:@") for s in segments)
    query = draw(st.none() | st.lists(
        st.tuples(st.text(PRINTABLE, max_size=8), st.text(PRINTABLE, max_size=8)), max_size=3
    ).map(lambda pairs: "&".join(_encoded(k, "!$'()*,;:@/?") + "=" +
                                 _encoded(v, "!$'()*,;:@/?") for k, v in pairs)))
    origin = "http://" + draw(st.sampled_from(AUTHORITIES))
    url = origin + path + ("" if query is None else "?" + query)
    return method, url, len(origin), -1 if query is None else len(origin) + len(path) + 1


def test_random_signed_requests_verify_and_any_changed_character_fails() -> None:
    counts = {"requests": 0, "changed": 0}

    @settings(max_examples=200)
    @given(requests(), st.data())
    def prop(request: tuple[str, str, int, int], data: st.DataObject) -> None:
        method, url, path_at, query_at = request
        headers = signed(method, url)
        assert verify_request(method, url, headers, now_s=NOW).key == KEY.public_key
        counts["requests"] += 1
        # Characters of the path after its leading "/", and of the query after its "?".
        end_of_path = query_at - 1 if query_at >= 0 else len(url)
        positions = [*range(path_at + 1, end_of_path),
                     *(range(query_at, len(url)) if query_at >= 0 else [])]
        if not positions:
            event("nothing to change: path '/' and no query text")
            return
        at = data.draw(st.sampled_from(positions))
        new = data.draw(PRINTABLE.filter(lambda c: c != url[at]))
        changed = url[:at] + new + url[at + 1:]
        event("changed the query" if query_at >= 0 and at >= query_at else "changed the path")
        with pytest.raises(BadSignature):
            verify_request(method, changed, headers, now_s=NOW)
        counts["changed"] += 1

    prop()
    assert counts["requests"] > 0 and counts["changed"] > 0, counts
