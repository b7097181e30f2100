"""The read-only invoice routes (GET /v1/invoices/{number}, /v1/invoices/stats) and
their SDK methods, against a real node with members enrolled through the CLI."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.nodes import RunningNode, running_node, tide
from tidechain.api.openapi import OPENAPI
from tidechain.client import Client
from tidechain.client import txbuilder as tb
from tidechain.core.crypto import SigningKey
from tidechain.core.errors import NotFound, Rejected
from tidechain.ledger.types import SignedTx
from tidechain.node.config import read_key

TAX_ID = "91350100M000100Y43"
NUMBER = "04400000000000000001"
LINE = tb.invoice_line("coffee", 2, 1500, 600)  # 3000 + 180 tax


@dataclass
class Issued:
    node: RunningNode
    merchant: SigningKey
    buyer: SigningKey


def _enrol(node: RunningNode, role: str, path: Path) -> SigningKey:
    done = tide("member", "enrol", "--role", role, "--name", path.stem, "--new-key",
                str(path), "--net", str(node.net), "--node", node.url)
    assert done.returncode == 0, done.stderr
    return read_key(path).key


def _send(client: Client, key: SigningKey, build: Callable[..., SignedTx], *args: Any) -> None:
    client.submit(build(key, client.chain_id(), *args, now_ms=int(time.time() * 1000),
                        nonce=os.urandom(16)))


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Issued]:
    root = tmp_path_factory.mktemp("invoice-api")
    with running_node(root, "invoice-api") as node:
        tax = _enrol(node, "tax_authority", root / "tax.key")
        merchant = _enrol(node, "invoice_issuer", root / "merchant.key")
        buyer = _enrol(node, "depositor", root / "buyer.key")
        with Client(node.url) as client:
            _send(client, tax, tb.authorise_issuer_tx, merchant.public_key, "Coffee Co.",
                  TAX_ID, 1_000_000)
            _send(client, merchant, tb.issue_invoice_tx,
                  tb.invoice_args(NUMBER, {"key": buyer.public_key}, [LINE]))
        yield Issued(node, merchant, buyer)


def test_an_invoice_is_readable_with_its_state(issued: Issued) -> None:
    with Client(issued.node.url) as client:
        record = client.invoice(NUMBER)
    assert record["number"] == NUMBER and record["kind"] == "blue"
    assert record["state"] == "issued" and record["total"] == 3180
    assert record["issuer"] == issued.merchant.public_key.hex()
    assert record["holder"] == issued.buyer.public_key.hex()
    assert record["content"]["lines"][0]["name"] == "coffee"
    assert record["pending_reversal"] is None


def test_statistics_by_tax_id_and_by_key_agree(issued: Issued) -> None:
    with Client(issued.node.url) as client:
        period = client.invoice(NUMBER)["period"]
        by_tax_id = client.invoice_stats(TAX_ID, period)
        by_key = client.invoice_stats(issued.merchant.public_key, period)
        other_month = client.invoice_stats(TAX_ID, "2001-01")
    assert by_tax_id["issuers"] == [issued.merchant.public_key.hex()]
    counters = {k: by_tax_id[k] for k in ("issued", "issued_count", "reversed", "reimbursed")}
    assert counters == {"issued": 3180, "issued_count": 1, "reversed": 0, "reimbursed": 0}
    assert all(by_key[k] == v for k, v in counters.items())
    assert other_month["issued"] == 0 and other_month["issued_count"] == 0


def test_unknown_invoices_and_issuers_are_not_found(issued: Issued) -> None:
    with Client(issued.node.url) as client:
        with pytest.raises(NotFound):
            client.invoice("04400000000000000099")
        with pytest.raises(NotFound):
            client.invoice_stats("91440300MA5F12342Q", "2026-01")


@pytest.mark.parametrize("path", [
    "/v1/invoices/123", "/v1/invoices/0440000000000000000x",
    "/v1/invoices/stats?issuer=91350100M000100Y43&month=2026-13",
    "/v1/invoices/stats?issuer=91350100M000100Y44&month=2026-01",
    "/v1/invoices/stats?month=2026-01",
    "/v1/invoices/stats?issuer=" + "zz" * 32 + "&month=2026-01",
])
def test_malformed_queries_are_bad_requests(issued: Issued, path: str) -> None:
    answer = httpx.get(issued.node.url + path, timeout=5)
    assert answer.status_code == 400, answer.text
    assert set(answer.json()) == {"error", "reason"}


def test_the_routes_are_in_the_openapi_document() -> None:
    assert {"/v1/invoices/{number}", "/v1/invoices/stats"} <= set(OPENAPI["paths"])


def test_sdk_refusals_are_typed(issued: Issued) -> None:
    with Client(issued.node.url) as client, pytest.raises(Rejected) as refused:
        client.invoice_stats(TAX_ID, "26-01")
    assert refused.value.http_status == 400
