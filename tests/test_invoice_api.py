"""The invoice application's queries (GET /v1/apps/invoice/{invoice, invoices, stats,
auditors}), their SDK methods and `tide invoice`, against a real node with members
enrolled through the CLI; and acceptance 3 of issue 5: a member that is neither a party nor the tax
authority cannot read an invoice's content through the API, the SDK, the CLI or the
raw blocks (nor the node's files).

Reads are members-only (ADR 0015): each read is signed by the member whose data it is
(the issuer, the buyer, the employer), by the tax authority, or by the regulator, who
read every invoice; a member that is no party is refused the record itself (403)."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.nodes import RunningNode, running_node, tide
from tidechain.api.openapi import openapi_document
from tidechain.api.routes import all_routes
from tidechain.client import Client, sealing
from tidechain.client import txbuilder as tb
from tidechain.client.auth import MemberSignatures
from tidechain.client.files import read_key
from tidechain.client.state_proof import verify_state_bundle
from tidechain.contracts import default_registry
from tidechain.contracts.invoice import state as invoice_state
from tidechain.core import cbor
from tidechain.core.crypto import SigningKey
from tidechain.core.errors import NotFound, Rejected
from tidechain.core.receipt import verify_receipt
from tidechain.core.trust import parse_trust
from tidechain.ledger.runtime import namespaced

TAX_ID = "91350100M000100Y43"
NUMBER = "04400000000000000001"
LINE = tb.invoice_line("coffee", 2, 1500, 600)  # 3000 + 180 tax


REMARK = "marker-7f3a9c: table 7, the corner seat"
"""Content that must appear nowhere outside the sealed envelope."""
LINE_NAME = "single-origin beans marker-52e1"


@dataclass
class Issued:
    node: RunningNode
    root: Path
    tax: SigningKey
    merchant: SigningKey
    buyer: SigningKey
    employer: SigningKey
    outsider: SigningKey
    regulator: SigningKey


def _enrol(node: RunningNode, role: str, path: Path) -> SigningKey:
    done = tide("member", "enrol", "--role", role, "--name", path.stem, "--new-key",
                str(path), "--net", str(node.net), "--node", node.url)
    assert done.returncode == 0, done.stderr
    return read_key(path).key


def _send(client: Client, key: SigningKey, method: str, args: dict[str, Any]) -> None:
    client.submit(tb.call_tx(key, client.chain_id(), "invoice", method, args,
                             now_ms=int(time.time() * 1000), nonce=os.urandom(16)))


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issued]:
    root = tmp_path_factory.mktemp("invoice-api")
    with running_node(root, "invoice-api") as node:
        keys = {name: _enrol(node, role, root / f"{name}.key") for name, role in (
            ("tax", "tax_authority"), ("merchant", "invoice_issuer"), ("buyer", "depositor"),
            ("employer", "enterprise"), ("outsider", "enterprise"),
            ("regulator", "regulator"))}
        done = tide("invoice", "set-auditors", "--key", str(root / "tax.key"),
                    "--net", str(node.net), "--node", node.url)
        assert done.returncode == 0, done.stderr
        with Client(node.url) as client:
            _send(client, keys["tax"], "authorise_issuer", tb.authorise_issuer_args(
                keys["merchant"].public_key, "Coffee Co.", TAX_ID, 1_000_000))
            lines = [LINE, tb.invoice_line(LINE_NAME, 1, 9900, 1300)]
            _send(client, keys["merchant"], "issue", tb.issue_args(
                tb.invoice_args(NUMBER, {"key": keys["buyer"].public_key}, lines,
                                remark=REMARK),
                keys["merchant"].public_key, auditors=client.invoice_auditors()))
        yield Issued(node, root, **keys)


def test_an_invoice_is_readable_with_its_state(issued: Issued) -> None:
    with Client(issued.node.url, key=issued.merchant) as client:  # its issuer
        record = client.invoice(NUMBER)
    assert record["number"] == NUMBER and record["kind"] == "blue"
    assert record["state"] == "issued" and record["total"] == 3180 + 11187
    assert record["issuer"] == issued.merchant.public_key.hex()
    assert record["holder"] == issued.buyer.public_key.hex()
    assert "content" not in record and len(record["sealed"]["readers"]) == 3
    assert record["pending_reversal"] is None


def test_statistics_by_tax_id_and_by_key_agree(issued: Issued) -> None:
    # A tax id's totals are the tax authority's; an issuer reads its own counters.
    with (Client(issued.node.url, key=issued.tax) as tax,
          Client(issued.node.url, key=issued.merchant) as merchant):
        period = tax.invoice(NUMBER)["period"]
        by_tax_id = tax.invoice_stats(TAX_ID, period)
        by_key = merchant.invoice_stats(issued.merchant.public_key, period)
        other_month = tax.invoice_stats(TAX_ID, "2001-01")
    assert (by_tax_id["tax_id"], by_tax_id["issuer"], by_tax_id["issuer_count"]) == (
        TAX_ID, None, 1)
    assert (by_key["tax_id"], by_key["issuer"]) == (TAX_ID, issued.merchant.public_key.hex())
    counters = {k: by_tax_id[k] for k in ("issued", "issued_count", "reversed", "reimbursed")}
    assert counters == {"issued": 14367, "issued_count": 1, "reversed": 0, "reimbursed": 0}
    assert all(by_key[k] == v for k, v in counters.items())
    assert other_month["issued"] == 0 and other_month["issued_count"] == 0


def test_unknown_invoices_and_issuers_are_not_found(issued: Issued) -> None:
    with Client(issued.node.url, key=issued.tax) as client:  # reads every invoice
        with pytest.raises(NotFound):
            client.invoice("04400000000000000099")
        with pytest.raises(NotFound):
            client.invoice_stats("91440300MA5F12342Q", "2026-01")


@pytest.mark.parametrize("path", [
    "/v1/apps/invoice/invoice?number=123",
    "/v1/apps/invoice/invoice?number=0440000000000000000x",
    "/v1/apps/invoice/invoice",
    "/v1/apps/invoice/stats?issuer=91350100M000100Y43&month=2026-13",
    "/v1/apps/invoice/stats?issuer=91350100M000100Y44&month=2026-01",
    "/v1/apps/invoice/stats?month=2026-01",
    "/v1/apps/invoice/stats?issuer=" + "zz" * 32 + "&month=2026-01",
    "/v1/apps/invoice/invoices", "/v1/apps/invoice/invoices?issuer=abc",
    "/v1/apps/invoice/invoices?issuer=" + "00" * 32 + "&cursor=x",
])
def test_malformed_queries_are_bad_requests(issued: Issued, path: str) -> None:
    # Signed by the tax authority, which may read each of them: the refusal is the
    # request's, not the reader's.
    answer = httpx.get(issued.node.url + path, timeout=5, auth=MemberSignatures(issued.tax))
    assert answer.status_code == 400, answer.text
    assert set(answer.json()) == {"error", "reason"}


def test_the_routes_are_in_the_openapi_document() -> None:
    paths = openapi_document(all_routes(default_registry()))["paths"]
    assert {f"/v1/apps/invoice/{q}" for q in ("invoice", "invoices", "stats", "auditors")} <= set(
        paths)
    # OpenAPI's `security`: `{}` among the alternatives is "no credential needed".
    assert {} in paths["/v1/apps/invoice/auditors"]["get"]["security"]
    assert {} not in paths["/v1/apps/invoice/invoice"]["get"]["security"]


def test_an_issuers_invoices_page_newest_first_each_once(issued: Issued) -> None:
    numbers = [f"044000000000000002{n:02d}" for n in range(5)]
    # The issuer pages its own invoices; search looks into every invoice, so it is
    # the tax authority's.
    with (Client(issued.node.url, key=issued.merchant) as client,
          Client(issued.node.url, key=issued.tax) as tax):
        _send(client, issued.merchant, "issue_batch", tb.issue_batch_args(
            [tb.invoice_args(n, {"key": issued.buyer.public_key}, [LINE]) for n in numbers],
            issued.merchant.public_key, auditors=client.invoice_auditors()))
        merchant = issued.merchant.public_key.hex()
        everything = [i["number"] for i in client.walk("invoice", "invoices", issuer=merchant)]
        for limit in (1, 2, 4):
            paged = [i["number"] for i in client.walk("invoice", "invoices", issuer=merchant,
                                                      limit=limit)]
            assert paged == everything
        first = client.query("invoice", "invoices", issuer=merchant, limit=2)
        assert len(first["items"]) == 2 and first["next"] is not None
        assert "sealed" not in first["items"][0]  # lists carry the public fields only
        assert client.query("invoice", "invoices", issuer="00" * 32) == {"items": [],
                                                                          "next": None}
        found = tax._get_json("/v1/search", {"q": numbers[0]})["found"]
    assert everything[:5] == numbers[::-1]  # newest first: the batch, last number first
    assert len(everything) == len(set(everything)) and NUMBER in everything
    assert {"kind": "invoice", "id": numbers[0], "app": "invoice",
            "path": f"/v1/apps/invoice/invoice?number={numbers[0]}"} in found


def test_sdk_refusals_are_typed(issued: Issued) -> None:
    with Client(issued.node.url) as client, pytest.raises(Rejected) as refused:
        client.invoice_stats(TAX_ID, "26-01")
    assert refused.value.http_status == 400


# --- acceptance 3: nobody but the parties and the tax authority reads the content -------


def _readers(issued: Issued) -> dict[str, SigningKey]:
    return {"tax": issued.tax, "merchant": issued.merchant, "buyer": issued.buyer,
            "employer": issued.employer, "outsider": issued.outsider,
            "regulator": issued.regulator}


def _assert_forbidden(client: Client) -> None:
    """The record itself is refused to a member that is no party: 403 naming the roles."""
    with pytest.raises(Rejected) as refused:
        client.invoice(NUMBER)
    assert (refused.value.http_status, refused.value.code) == (403, "forbidden")
    assert "tax_authority" in refused.value.reason


def test_sdk_opens_the_content_for_its_readers_only(issued: Issued) -> None:
    url = issued.node.url
    for name in ("tax", "merchant", "buyer"):  # each reads the record with its own key
        key = _readers(issued)[name]
        with Client(url, key=key) as client:
            content = client.invoice_content(NUMBER, key=key)
        assert content["remark"] == REMARK and content["lines"][1]["name"] == LINE_NAME
    for name in ("employer", "outsider"):  # no party (not submitted to yet): no record
        with Client(url, key=_readers(issued)[name]) as client:
            _assert_forbidden(client)
    # The regulator reads every record, yet opens none; nor would the record, read by
    # the regulator, open for the others.
    with Client(url, key=issued.regulator) as regulator:
        for name in ("employer", "outsider", "regulator"):
            with pytest.raises(sealing.NotAReader):
                regulator.invoice_content(NUMBER, key=_readers(issued)[name])


def test_cli_shows_content_to_a_reader_and_refuses_an_outsider(issued: Issued) -> None:
    where = ["--net", str(issued.node.net), "--node", issued.node.url]
    shown = tide("invoice", "show", NUMBER, "--key", str(issued.root / "buyer.key"), *where)
    assert shown.returncode == 0, shown.stderr
    assert REMARK in shown.stdout and LINE_NAME in shown.stdout
    # The regulator reads the record (sealed) but opens nothing, with or without its key.
    regulator = str(issued.root / "regulator.key")
    sealed = tide("invoice", "show", NUMBER, "--as", regulator, *where)
    assert sealed.returncode == 0, sealed.stderr
    assert "sealed" in sealed.stdout and REMARK not in sealed.stdout
    refused = tide("invoice", "show", NUMBER, "--key", regulator, *where)
    assert refused.returncode == 2 and "not_reader" in refused.stderr
    assert REMARK not in refused.stdout + refused.stderr
    # An outsider is no party: it is refused the record itself.
    refused = tide("invoice", "show", NUMBER, "--key", str(issued.root / "outsider.key"),
                   *where)
    assert refused.returncode == 2 and "forbidden" in refused.stderr
    assert REMARK not in refused.stdout + refused.stderr


def test_no_api_answer_block_or_node_file_holds_the_content(issued: Issued) -> None:
    markers = (REMARK.encode(), LINE_NAME.encode(), b"marker-")
    # The regulator reads every record, block and entry: what it reads holds no content.
    with Client(issued.node.url, key=issued.regulator) as client:
        height = int(client.status()["height"])
        answers = [httpx.get(f"{issued.node.url}/v1/apps/invoice/invoice?number={NUMBER}",
                             timeout=5, auth=MemberSignatures(issued.regulator)).text]
        assert NUMBER in answers[0]
        for h in range(1, height + 1):
            block = client.block(h)
            answers.append(str(block))
            for tx_id in block.get("txs", []):
                answers.append(str(client.tx(tx_id)))
    for text in answers:
        assert all(m.decode() not in text for m in markers)
    # The issue's receipt proves the sealed invoice is in the log, offline, and
    # discloses nothing: its entry holds the commitment, not the content.
    trust = parse_trust((issued.node.net / "trust.txt").read_text())
    with Client(issued.node.url, key=issued.regulator) as client:
        tx_id = client.invoice(NUMBER)["tx"]
        index = int(client.tx(tx_id)["log_index"])
        receipt = client.receipt(index)
    verified = verify_receipt(receipt, trust)
    assert verified.index == index
    assert bytes.fromhex(client_record_commitment(issued)) in verified.entry
    assert all(m.decode() not in receipt for m in markers)
    # The raw store (SQLite files, WAL included) and every other file of the node.
    files = [p for p in issued.node.net.rglob("*") if p.is_file()]
    assert any(p.suffix == ".sqlite" or "sqlite" in p.name or p.suffix == ".db"
               for p in files), [p.name for p in files]
    for path in files:
        data = path.read_bytes()
        assert all(m not in data for m in markers), path


def client_record_commitment(issued: Issued) -> str:
    with Client(issued.node.url, key=issued.merchant) as client:
        commitment: str = client.invoice(NUMBER)["sealed"]["commitment"]
    return commitment


def test_the_employer_reads_once_the_buyer_submits_to_it(issued: Issued) -> None:
    where = ["--net", str(issued.node.net), "--node", issued.node.url]
    for args in (("claim", NUMBER, "--key", str(issued.root / "buyer.key")),
                 ("submit", NUMBER, "--key", str(issued.root / "buyer.key"), "--employer",
                  issued.employer.public_key.hex())):
        done = tide("invoice", *args, *where)
        assert done.returncode == 0, done.stderr
    with Client(issued.node.url, key=issued.employer) as client:
        assert client.invoice_content(NUMBER, key=issued.employer)["remark"] == REMARK
        with pytest.raises(sealing.NotAReader):  # the record, read by the employer
            client.invoice_content(NUMBER, key=issued.outsider)
    with Client(issued.node.url, key=issued.outsider) as client:
        _assert_forbidden(client)


UBL = Path(__file__).resolve().parents[1] / ".." / "shared" / "vectors" / "ubl"


def test_cli_imports_a_ubl_invoice_and_a_credit_note_against_it(issued: Issued) -> None:
    where = ["--net", str(issued.node.net), "--node", issued.node.url]
    merchant = ["--key", str(issued.root / "merchant.key")]
    invoice_no, red_no = "04400000000000000501", "04400000000000000502"
    xml = UBL / "ubl-tc434-example9.xml"
    done = tide("invoice", "import", str(xml), invoice_no, *merchant, "--buyer-key",
                issued.buyer.public_key.hex(), "--validate", *where)
    assert done.returncode == 0, done.stderr
    credit = UBL / "ubl-tc434-creditnote1.xml"
    done = tide("invoice", "import", str(credit), red_no, *merchant, "--original",
                invoice_no, "--reason", "sales_return", "--validate", *where)
    assert done.returncode == 0, done.stderr
    with (Client(issued.node.url, key=issued.tax) as tax,
          Client(issued.node.url, key=issued.buyer) as buyer):
        content = tax.invoice_content(invoice_no, key=issued.tax)
        red = buyer.invoice_content(red_no, key=issued.buyer)
        assert buyer.invoice(invoice_no)["reversed"] == red["total"] == 10011
    assert content["source"]["sha256"] == hashlib.sha256(xml.read_bytes()).digest()
    assert (content["source"]["currency"], content["total"]) == ("EUR", 17787)
    assert red["source"]["format"] == "ubl-2.1-creditnote"
    refused = tide("invoice", "import", str(UBL / "ubl-tc434-example2.xml"),
                   "04400000000000000503", *merchant, "--buyer-key",
                   issued.buyer.public_key.hex(), *where)
    assert refused.returncode == 2 and "ubl_unmappable" in refused.stderr


def test_a_state_proof_shows_the_invoice_state_offline_and_no_content(issued: Issued) -> None:
    """The invoice's existence and state at the head, proved against trust.txt by the
    state proof (header, commit certificate, state-tree path), with its content sealed."""
    key = namespaced(invoice_state.NAME, invoice_state.invoice_key(NUMBER))
    # The invoice application's state is read by the tax authority (and the regulator).
    bundle = httpx.get(f"{issued.node.url}/v1/state/proof/{key.hex()}", timeout=5,
                       auth=MemberSignatures(issued.tax)).json()
    verified = verify_state_bundle(bundle, parse_trust((issued.node.net / "trust.txt")
                                                       .read_text()))
    assert verified.value is not None
    record = cbor.decode(verified.value)
    assert record["number"] == NUMBER and record["state"] in ("issued", "locked")
    assert b"marker-" not in verified.value and REMARK.encode() not in verified.value
    assert sealing.open_content(record, key=issued.tax)["remark"] == REMARK
