"""`tide timestamp FILE`: an RFC 3161 time stamp from the node's time-stamp authority,
written to FILE.tsr (what `openssl ts -verify -in` reads), and the receipt of the chain
deposit behind it, written to FILE.tsr.tlog-proof. Both are checked before they are
written: the token is for this file's SHA-256 and this request's nonce, and the
receipt proves a deposit of the same imprint at the token's time (api/tsa.py)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from tidechain.cli import EXIT_OK
from tidechain.cli.base import Output, add, client, hash_with_progress, trust_option
from tidechain.client.sdk import write_atomically
from tidechain.client.verify import verify_deposit_receipt
from tidechain.core.errors import ProofError, Rejected
from tidechain.core.timefmt import iso_utc

TOKEN_SUFFIX = ".tsr"
RECEIPT_SUFFIX = ".tsr.tlog-proof"


def cmd_timestamp(args: argparse.Namespace, out: Output) -> int:
    from tidechain.timestamp import describe_token
    from tidechain.timestamp.request import NONCE_BYTES, build_request

    path = Path(args.file)
    digest = hash_with_progress(path, out.err)
    nonce = int.from_bytes(os.urandom(NONCE_BYTES), "big")
    with client(args, need_trust=True) as sdk:
        reply = sdk.timestamp(build_request(digest, nonce))
        token = describe_token(reply)
        if token.status not in (0, 1):
            raise Rejected(f"the time-stamp authority refused: "
                           f"{', '.join(token.failure_info) or 'no reason'}: "
                           f"{token.status_text or ''}".rstrip(": "), code="timestamp_refused")
        if token.imprint != digest or token.nonce != nonce:
            raise ProofError("the time-stamp reply is not for this file and request")
        if token.deposit_index is None or token.gen_time_ms is None:
            raise ProofError("the time stamp names no chain deposit")
        receipt = sdk.receipt(token.deposit_index)  # public: anyone may fetch it
        assert sdk.trust is not None
        proven = verify_deposit_receipt(receipt, sdk.trust, digest)
    if proven.time_ms != token.gen_time_ms:
        raise ProofError(f"the deposit's block time {proven.time_ms} is not the token's "
                         f"genTime {token.gen_time_ms}")
    token_path = Path(args.output or str(path) + TOKEN_SUFFIX)
    receipt_path = Path(str(token_path) + ".tlog-proof")
    write_atomically(token_path, reply)
    write_atomically(receipt_path, receipt)
    data: dict[str, Any] = {"file": str(path), "token": str(token_path),
                            "receipt": str(receipt_path), "gen_time_ms": token.gen_time_ms,
                            "serial": token.serial, "policy": token.policy,
                            "log_index": token.deposit_index, "digest": digest.hex()}
    out.result(data, [
        f"time-stamped {path} (RFC 3161, backed by a chain deposit; both verified)",
        f"  token            {token_path}  (openssl ts -verify -data {path} -in {token_path}"
        " -CAfile ORG-CA.pem)",
        f"  time (genTime)   {iso_utc(token.gen_time_ms)}",
        f"  serial           {token.serial}",
        f"  policy           {token.policy}",
        f"  chain deposit    log index {token.deposit_index}, receipt {receipt_path}",
        f"  signed by        {', '.join(proven.signers)}"])
    return EXIT_OK


def register(commands: Any) -> None:
    p = add(commands, "timestamp", cmd_timestamp,
            "an RFC 3161 time stamp of FILE, backed by a chain deposit (FILE.tsr and "
            "FILE.tsr.tlog-proof)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--output", metavar="TSR", help="where to write the token "
                   "(default FILE.tsr; the receipt goes beside it)")
    p.add_argument("--key", metavar="KEYFILE", help="sign the request with this member key "
                   "(a service restricted to members)")
    trust_option(p)
