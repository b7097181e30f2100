"""The shipping demo (docs/evidence.md): a tally report that counts only when the parties
stand behind it, on a four-validator network run by `tide cluster up`, every step the
`tide` command a user would type.

A tally company deposits the SHA-256 of its tally report, naming three co-signers: the
carrier (by its member key), the port (whoever signs for the port organisation as an
enterprise) and the shipping agent (by key), two of whom must sign. A party outside the
list cannot sign; the carrier cannot sign twice; after one signature the deposit is
pending, after two it is effective; each state is proven offline by a proof set and the
trust file. A second report, whose deadline passes with one signature, lapses. The
tally company then publishes the report (公示), and anyone, with no credential, finds
it by its digest. Last, the node's RFC 3161 time-stamp authority stamps the report and
`openssl ts -verify` checks the token against the organisation's CA.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tidechain.client.files import DEFAULT_ORG, read_key
from tidechain.scf_demo import Demo, _say, _step, network

ACTORS = {  # key file stem: (certificate name, roles, what it is in the story)
    "tally": ("Yangshan Tally Co.", ("depositor",), "the tally company"),
    "carrier": ("TIDE STAR Shipping", ("carrier",), "the carrier"),
    "port": ("Yangshan Port Operations", ("enterprise",), "the port"),
    "agent": ("Lingang Shipping Agency", ("enterprise",), "the shipping agent"),
    "outsider": ("Unrelated Trading Co.", ("carrier",), "a party not named"),
}
REPORT = ("Tally report TR-2026-1207-001\nVessel: TIDE STAR  Voyage: 2612E\n"
          "Port: Yangshan, berth 3\nContainers discharged: 412 (TEU 688)\n"
          "Damaged: 2 (seal intact, dented doors)\n")
LAPSING = "Tally report TR-2026-1207-002 (draft, never countersigned)\n"
LAPSE_S = 12
"""The second report's signing window: short, so the demo sees it lapse."""


def _enrol(demo: Demo) -> None:
    _step("The organisation enrols the parties (each gets a key and a member certificate)")
    (demo.root / "keys").mkdir(exist_ok=True)
    for stem, (name, roles, _) in ACTORS.items():
        role_args = [a for role in roles for a in ("--role", role)]
        demo.tide("member", "enrol", *role_args, "--name", name, "--new-key",
                  f"keys/{stem}.key")
        demo.keys[stem] = read_key(demo.root / "keys" / f"{stem}.key").key


def _index(text: str) -> int:
    for line in text.splitlines():
        if line.strip().startswith("log index"):
            return int(line.split()[2])
    raise SystemExit(f"no log index in {text!r}")


def _cosigned(demo: Demo) -> int:
    docs = demo.root / "documents"
    docs.mkdir(exist_ok=True)
    (docs / "tally-report.txt").write_text(REPORT)
    _step("The tally company deposits its report, naming three co-signers, two of whom "
          "must sign")
    out = demo.tide("deposit", "documents/tally-report.txt", "--meta", "type=tally-report",
                    "--cosigner", "keys/carrier.key.pem",
                    "--cosigner", f"{DEFAULT_ORG}:enterprise",
                    "--cosigner", "keys/agent.key.pem", "--threshold", "2",
                    "--deadline", "+7d", "--key", "keys/tally.key")
    at = _index(out)
    _step("A party outside the list cannot sign")
    demo.tide("evidence", "sign", str(at), "documents/tally-report.txt",
              "--key", "keys/outsider.key", expect="not_a_cosigner")
    _step("The carrier signs: one of two")
    demo.tide("evidence", "sign", str(at), "documents/tally-report.txt",
              "--key", "keys/carrier.key")
    demo.tide("evidence", "sign", str(at), "documents/tally-report.txt",
              "--key", "keys/carrier.key", expect="already_signed")
    demo.tide("evidence", "proof", str(at), "-o", "receipts/tally-pending.tlog-proofs",
              "--as", "keys/tally.key")
    demo.tide("verify", "documents/tally-report.txt", "receipts/tally-pending.tlog-proofs",
              "--trust", "net/trust.txt")
    _step("The port signs (for the port organisation, as an enterprise): two of two, "
          "effective")
    demo.tide("evidence", "sign", str(at), "documents/tally-report.txt",
              "--key", "keys/port.key")
    demo.tide("evidence", "show", str(at), "--as", "keys/tally.key")
    demo.tide("evidence", "proof", str(at), "-o", "receipts/tally-effective.tlog-proofs",
              "--as", "keys/agent.key")
    _say("the proof set alone, with the trust file, proves who signed: offline")
    demo.tide("verify", "documents/tally-report.txt", "receipts/tally-effective.tlog-proofs",
              "--trust", "net/trust.txt")
    return at


def _lapsing(demo: Demo) -> None:
    (demo.root / "documents" / "draft-report.txt").write_text(LAPSING)
    _step(f"A second report must be countersigned within {LAPSE_S} s; only the carrier "
          "signs")
    out = demo.tide("deposit", "documents/draft-report.txt", "--cosigner",
                    "keys/carrier.key.pem", "--cosigner", "keys/agent.key.pem",
                    "--deadline", f"+{LAPSE_S}s", "--key", "keys/tally.key")
    at = _index(out)
    demo.tide("evidence", "sign", str(at), "documents/draft-report.txt",
              "--key", "keys/carrier.key")
    _say(f"waiting {LAPSE_S} s for the deadline")
    time.sleep(LAPSE_S + 2)
    demo.tide("evidence", "sign", str(at), "documents/draft-report.txt",
              "--key", "keys/agent.key", expect="lapsed")
    demo.tide("evidence", "proof", str(at), "-o", "receipts/draft-lapsed.tlog-proofs",
              "--as", "keys/tally.key")
    demo.tide("verify", "receipts/draft-lapsed.tlog-proofs", "--trust", "net/trust.txt")


def _public(demo: Demo, at: int) -> None:
    _step("Members-only until published: an anonymous lookup finds nothing")
    demo.tide("evidence", "lookup", "documents/tally-report.txt", "--anonymous")
    _step("The tally company publishes the report (公示); now anyone finds it")
    demo.tide("evidence", "publish", str(at), "--key", "keys/tally.key")
    demo.tide("evidence", "lookup", "documents/tally-report.txt", "--anonymous")
    demo.tide("evidence", "proof", str(at), "-o", "receipts/tally-public.tlog-proofs",
              "--anonymous")


def _timestamp(demo: Demo) -> None:
    _step("An RFC 3161 time stamp of the report, backed by a deposit, checked by OpenSSL")
    demo.tide("timestamp", "documents/tally-report.txt", "--key", "keys/tally.key")
    openssl = shutil.which("openssl")
    if openssl is None:
        _say("openssl is not installed here: skipping `openssl ts -verify`")
        return
    ca = demo.root / "net" / "orgs" / DEFAULT_ORG / "ca.pem"
    command = [openssl, "ts", "-verify", "-data", "documents/tally-report.txt", "-in",
               "documents/tally-report.txt.tsr", "-CAfile", str(ca.relative_to(demo.root))]
    print("\n$ " + " ".join(command[0:1] and ["openssl", *command[1:]]), flush=True)
    done = subprocess.run(command, cwd=demo.root, text=True, capture_output=True)
    print((done.stdout + done.stderr).rstrip(), flush=True)
    if done.returncode != 0:
        raise SystemExit("openssl ts -verify refused the token: this is a bug")


def run(root: Path, keep: bool) -> int:
    demo = Demo(root)
    try:
        network(demo, "shipping-demo")
        _enrol(demo)
        at = _cosigned(demo)
        _lapsing(demo)
        _public(demo, at)
        _timestamp(demo)
        _step("Done")
        print(json.dumps({"directory": str(root), "deposit": at}))
    finally:
        demo.tide("cluster", "down", "net", show=False)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shipping-demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", metavar="DIR", help="work here (kept) instead of a temp dir")
    args = parser.parse_args(argv)
    if args.dir:
        root = Path(args.dir)
        root.mkdir(parents=True, exist_ok=True)
        return run(root.resolve(), keep=True)
    return run(Path(tempfile.mkdtemp(prefix="tide-shipping-")), keep=False)


if __name__ == "__main__":
    sys.exit(main())
