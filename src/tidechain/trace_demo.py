"""The traceability demo (docs/traceability.md): a farm, a processor, a cold-chain
carrier and a retailer, each its own member organisation, on a four-validator network
run by `tide cluster up`, every step the `tide` command a user would type.

The alliance's founding organisation (which the market regulator belongs to) admits the
four organisations by governance, each with its administrator and the member key its
node signs captures with; each claims its GS1 company prefix. Each organisation's node
serves the EPCIS 2.0 REST binding, and each party captures its steps of the story
(trace_scenario.py) through its own node: the farm's harvest and shipment, the
processor's receipt, transformation and packing, the carrier's loading, its
temperature report (XML, with sensor data) and unloading, the retailer's receipt,
unpacking and sale. Then the farm recalls its lot. The retailer traces the pack it
sold: it sees its own and its carrier's events, the others as stubs, and the recall.
The regulator traces the same pack through every event back to the farm's lot, fetches
every event's receipt and verifies each offline with the trust file alone, and asks
which items the recall affects.

GS1's EPCIS schemas are not shipped with tidechain (they are GS1's): the demo reads
them from `$TIDE_EPCIS_SCHEMAS`, or from the test vectors beside this checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from tidechain.client.files import node_urls
from tidechain.identity.uscc import org_code_check_char, uscc_check_char
from tidechain.scf_demo import Demo, _say, _step, free_port_block
from tidechain.trace_scenario import (
    CARRIER_PREFIX,
    FARM_LOT,
    FARM_PREFIX,
    PROCESSOR_PREFIX,
    RETAILER_PREFIX,
    SOLD_PACK,
    scenario,
)

VALIDATORS = 4
ORGS = {  # org id: (legal name, node index, capturer role, GS1 company prefix, division)
    "farm": ("Yantai Orchard Cooperative", 0, "enterprise", FARM_PREFIX, "370600"),
    "processor": ("Jiaxing Fruit Processing Co., Ltd.", 1, "enterprise", PROCESSOR_PREFIX,
                  "330400"),
    "carrier": ("Yangshan Cold Chain Logistics Co., Ltd.", 2, "carrier", CARRIER_PREFIX,
                "310100"),
    "retailer": ("Hefei Fresh Markets Co., Ltd.", 3, "enterprise", RETAILER_PREFIX,
                 "340100"),
}
_PROPOSAL = re.compile(r"proposal #(\d+)")
VECTORS_BESIDE = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "epcis"
SCHEMAS_HINT = ("GS1's EPCIS 2.0 schemas are needed (not shipped: they are GS1's). Set "
                "TIDE_EPCIS_SCHEMAS to a folder holding GS1's schema/ and xsd/ folders, "
                "e.g. a checkout of github.com/gs1/EPCIS at commit "
                "2b888befbc071e1c2d388e027b30149b3f51dcef (its JSON-Schema and XSD folders)")


def uscc(division: str, serial: int) -> str:
    """A well-formed unified social credit code (check characters computed)."""
    body8 = f"MA{serial:06d}"
    first17 = "91" + division + body8 + org_code_check_char(body8)
    return first17 + uscc_check_char(first17)


def schemas_dir() -> Path:
    configured = os.environ.get("TIDE_EPCIS_SCHEMAS")
    folder = Path(configured) if configured else VECTORS_BESIDE
    if not (folder / "schema" / "EPCIS-JSON-Schema.json").is_file():
        raise SystemExit(f"{SCHEMAS_HINT}; looked in {folder}")
    return folder.resolve()


def _top_level(node_toml: Path, lines: str) -> None:
    """Add settings among node.toml's top-level keys, before its [[peers]] tables."""
    text = node_toml.read_text()
    table = text.find("\n[")
    at = len(text) if table < 0 else table + 1
    node_toml.write_text(text[:at] + lines + text[at:])


def _network(demo: Demo) -> None:
    port = free_port_block()
    _step(f"The alliance's network: {VALIDATORS} validators on this machine, each "
          "serving the EPCIS 2.0 REST binding")
    demo.tide("init", "net", "--name", "trace-demo", "--validators", str(VALIDATORS),
              "--port", str(port), "--org", "alliance", "--legal-name",
              "Yangtze River Delta Traceability Alliance", "--uscc", uscc("310000", 1))
    schemas = schemas_dir()
    _say(f"GS1's schemas from {schemas}")
    (demo.root / "keys").mkdir(exist_ok=True)
    for org, (_, node, role, _, division) in ORGS.items():
        demo.tide("org", "init", f"orgs/{org}", "--org", org, "--legal-name", ORGS[org][0],
                  "--uscc", uscc(division, 10 + node))
        demo.tide("org", "issue", f"orgs/{org}", "--role", "admin", "--name",
                  f"{org} administrator", "--new-key", f"keys/{org}-admin.key")
        (demo.root / "net" / f"node{node}" / "epcis").mkdir(parents=True, exist_ok=True)
        demo.tide("org", "issue", f"orgs/{org}", "--role", role, "--name",
                  f"{org} EPCIS gateway", "--new-key", f"net/node{node}/epcis/capturer.key")
        _top_level(demo.root / "net" / f"node{node}" / "node.toml",
                   f'epcis = true\nepcis_schemas = "{schemas}"\n')
    _say("each node's EPCIS gateway key belongs to the organisation that node serves")
    demo.tide("cluster", "up", "net")


def _admit(demo: Demo) -> None:
    _step("Governance admits the four organisations (each with its administrator and "
          "its gateway's member key) and they claim their GS1 company prefixes")
    voters = ["net/admin.key"]
    for org, (_, node, _, _, _) in ORGS.items():
        text = demo.tide("gov", "propose", "add_org", "--ca-cert", f"orgs/{org}/ca.pem",
                         "--member-cert", f"keys/{org}-admin.key.pem", "--member-cert",
                         f"net/node{node}/epcis/capturer.key.pem")
        found = _PROPOSAL.search(text)
        if found is None:
            raise SystemExit(f"no proposal number in {text!r}")
        for voter in voters:  # more than two thirds of the organisations on chain
            voted = demo.tide("gov", "vote", found.group(1), "--approve", "--admin-key",
                              voter)
            if ": passed" in voted:
                break
        voters.append(f"keys/{org}-admin.key")
    for org, (_, _, _, prefix, _) in ORGS.items():
        demo.tide("call", "trace.claim", "--arg", f"prefix={prefix}", "--key",
                  f"keys/{org}-admin.key")
    demo.tide("member", "enrol", "--role", "regulator", "--name",
              "Shanghai Market Regulation Bureau", "--new-key", "keys/regulator.key")


def _story(demo: Demo, urls: list[str]) -> None:
    _step("Each party captures its steps through its own node, as any EPCIS capture "
          "client would (POST /v1/epcis/capture; the node's gateway key signs each event)")
    (demo.root / "docs").mkdir(exist_ok=True)
    start_ms = int(time.time() * 1000) - 14 * 86_400_000
    for number, step in enumerate(scenario(start_ms), 1):
        _say(f"{step.actor}: {step.title}")
        path = f"docs/{number:02d}-{step.actor}.{'xml' if step.media == 'xml' else 'jsonld'}"
        (demo.root / path).write_bytes(step.document)
        demo.tide("epcis", "capture", path, "--node", urls[ORGS[step.actor][1]],
                  "--as", f"keys/{step.actor}-admin.key")


def _trace(demo: Demo, urls: list[str]) -> None:
    _step("The retailer traces the pack it sold: its own events and its carrier's in "
          "full, the others as stubs, and the farm's recall")
    demo.tide("trace", SOLD_PACK, "--node", urls[3], "--as", "keys/retailer-admin.key")
    _step("The regulator traces the same pack back to the farm's lot, and verifies every "
          "event's receipt offline")
    demo.tide("trace", SOLD_PACK, "--as", "keys/regulator.key", "--receipts", "receipts")
    found = demo.tide("trace", SOLD_PACK, "--as", "keys/regulator.key", "--json",
                      show=False)
    (demo.root / "trace.json").write_text(found)
    receipts = sorted(str(p.relative_to(demo.root))
                      for p in (demo.root / "receipts").glob("*.tlog-proof"))
    demo.verify(receipts[:3])
    _say(f"... and {len(receipts) - 3} more, all verified by `tide trace --receipts`")
    _step("Which items does the recall of the farm's lot affect?")
    demo.tide("epcis", "recall", FARM_LOT, "--as", "keys/regulator.key")


def run(root: Path) -> None:
    demo = Demo(root)
    _network(demo)
    try:
        urls = node_urls(root / "net")
        _admit(demo)
        _story(demo, urls)
        _trace(demo, urls)
        summary = json.loads((root / "trace.json").read_text())
        print(f"\nThe pack's history: {len(summary['events'])} events by "
              f"{', '.join(summary['organisations'])}; every receipt verified offline.")
    finally:
        demo.tide("cluster", "down", "net")


def main(argv: list[str] | None = None) -> int:
    """Run the demo in `--dir` (default: a new temp dir); 0 when every step went as
    the story says."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", help="where to create the demo (default: a new temp dir)")
    args = parser.parse_args(argv)
    root = Path(args.dir or tempfile.mkdtemp(prefix="tidechain-trace-demo-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    print(f"tidechain traceability demo in {root}")
    print(f"(the commands run there, with TIDE_NET={root / 'net'})")
    started = time.monotonic()
    run(root)
    print(f"\nDemo complete in {time.monotonic() - started:.0f} s. The network, keys, "
          f"documents, trace.json and receipts are in {root} (node logs: "
          "net/nodeN/node.log).")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main", "run"]
