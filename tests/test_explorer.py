"""The web explorer (issue 16, docs/explorer.md) on a real node, in a real browser.

One validator with data (deposits public, private and co-signed; a regulator enrolled
with a key file the browser loads; a governance proposal; an e-invoice; a supply-chain
finance certificate split down a tier), driven with Debian's chromium through
Playwright. Every page must show the node's own data; the anonymous visitor sees the
public status and a "members only" message elsewhere; the member's requests are signed
in the browser (RFC 9421) byte for byte as the SDK signs them; a document dropped on the
page is hashed there and never sent; the log page verifies RFC 9162 consistency proofs
(checked against core/merkle.py's) and raises the fork alarm for another chain's
checkpoint; every explorer answer carries the CSP and no request leaves the node's
origin. A screenshot of every page goes to $TIDE_TEST_ARTIFACTS (or the test's
tmp_path/screenshots).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.nodes import UNLIMITED_READS_TOML, RunningNode, running_node, tide
from tidechain.client.files import read_key
from tidechain.core.crypto import sha256
from tidechain.core.merkle import (
    CompactRange,
    MemoryNodeStore,
    consistency_proof,
    leaf_hash,
    root_at,
)
from tidechain.core.note import encode_base64
from tidechain.explorer import STATIC_DIR
from tidechain.explorer.routes import CSP, STANDALONE_VERIFIER
from tidechain.explorer.verify_html import build_verify_html
from tidechain.identity.httpsig import sign_headers

try:
    from playwright.sync_api import Browser, Page, sync_playwright
except ImportError:  # pragma: no cover - the dev extra installs it
    sync_playwright = None

pytestmark = pytest.mark.timeout(240)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
VIEWPORT = {"width": 1366, "height": 900}
WAIT_MS = 15_000
"""The longest a test waits for something to show on a page: a failure, never a measure."""
INVOICE_NO = "04400000000000000001"
SUPPLIER_TAX_ID = "91350100M000100Y43"


# --- the chain ----------------------------------------------------------------------------


@dataclass
class Chain:
    node: RunningNode
    root: Path
    regulator_key: Path
    private_doc: Path
    private_digest: str
    private_index: int
    public_digest: str
    public_index: int
    cosigned_index: int
    carrier_key_hex: str
    proposal_id: int
    issuer_hex: str
    keys: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str) -> str:
        done = tide(*args, "--net", str(self.node.net), cwd=self.root)
        assert done.returncode == 0, f"tide {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def cli_json(self, *args: str) -> dict[str, Any]:
        done = tide("--json", *args, "--net", str(self.node.net), cwd=self.root)
        assert done.returncode == 0, f"tide {' '.join(args)}:\n{done.stdout}{done.stderr}"
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    def status(self) -> dict[str, Any]:
        answer: dict[str, Any] = httpx.get(f"{self.node.url}/v1/status", timeout=10).json()
        return answer


def _key_hex(path: Path) -> str:
    return read_key(path).key.public_key.hex()


def _populate(node: RunningNode, root: Path) -> Chain:
    """Deposits, members, a proposal, an invoice and a certificate tree, as users make
    them: with the `tide` command."""
    chain = Chain(node, root, root / "reg.key", root / "contract-2026-017.pdf", "", 0, "", 0, 0,
                  "", 0, "")
    chain.private_doc.write_bytes(b"%PDF-1.7 supply contract 2026-017\n" + os.urandom(64))
    public_doc = root / "tally-0042.txt"
    public_doc.write_text("Tally report 0042, MV Huangpu Star, 1,200 TEU\n")
    made = chain.cli_json("deposit", str(chain.private_doc), "--meta", "kind=contract")
    chain.private_digest, chain.private_index = made["digest"], made["log_index"]
    made = chain.cli_json("deposit", str(public_doc), "--public", "--meta", "kind=tally")
    chain.public_digest, chain.public_index = made["digest"], made["log_index"]
    chain.cli("member", "enrol", "--role", "regulator", "--name", "Market Regulator",
              "--new-key", str(chain.regulator_key))
    carrier = root / "carrier.key"
    chain.cli("member", "enrol", "--role", "depositor", "--name", "Huangpu Carrier",
              "--new-key", str(carrier))
    chain.carrier_key_hex = _key_hex(carrier)
    cosigned = root / "insurance-record.txt"
    cosigned.write_text("Insurance record 7781: cargo insured for CNY 2,000,000\n")
    made = chain.cli_json("deposit", str(cosigned), "--cosigner", f"{carrier}.pem",
                          "--threshold", "1")
    chain.cosigned_index = made["log_index"]
    chain.cli("evidence", "sign", str(chain.cosigned_index), str(cosigned), "--key", str(carrier))
    proposed = chain.cli("gov", "propose", "set_param", "--param", "consensus.max_block_txs",
                         "--value", "500")
    found = re.search(r"proposal #(\d+)", proposed)
    assert found, proposed
    chain.proposal_id = int(found.group(1))
    _trade(chain)
    return chain


def _trade(chain: Chain) -> None:
    """An e-invoice and a receivable certificate split down a tier (docs/scf.md)."""
    keys = chain.root / "keys"
    keys.mkdir()
    for stem, name, roles in (("tax", "Shanghai Tax Service", ["tax_authority"]),
                              ("steel", "Dongfang Steel Group", ["enterprise"]),
                              ("bank", "Pudong Commercial Bank", ["funder"]),
                              ("tier1", "Minhang Coil Processing", ["enterprise",
                                                                    "invoice_issuer"]),
                              ("tier2", "Jiading Auto Parts", ["enterprise"])):
        role_args = [a for role in roles for a in ("--role", role)]
        chain.cli("member", "enrol", *role_args, "--name", name, "--new-key",
                  str(keys / f"{stem}.key"))
        chain.keys[stem] = _key_hex(keys / f"{stem}.key")
    chain.issuer_hex = chain.keys["tier1"]
    chain.cli("call", "invoice.set_auditors", "--arg", f'keys=["{chain.keys["tax"]}"]',
              "--key", str(keys / "tax.key"))
    chain.cli("call", "invoice.authorise_issuer", "--arg", f"issuer={chain.keys['tier1']}",
              "--arg", "name=Minhang Coil Processing", "--arg", f"tax_id={SUPPLIER_TAX_ID}",
              "--arg", "quota=1000000000", "--key", str(keys / "tax.key"))
    chain.cli("invoice", "issue", INVOICE_NO, "--key", str(keys / "tier1.key"), "--buyer-key",
              chain.keys["steel"], "--line", "hot-rolled steel coil (t),200,480000,1300")
    chain.cli("scf", "line", "--core", str(keys / "steel.key.pem"), "--limit", "5,000,000.00",
              "--key", str(keys / "bank.key"))
    contract = chain.root / "supply-contract.txt"
    contract.write_text("Supply contract 2026-SC-019: 200 t hot-rolled coil\n")
    chain.cli("scf", "issue", "--to", str(keys / "tier1.key.pem"), "--amount", "1,000,000.00",
              "--maturity", "+90d", "--contract", str(contract), "--invoice", INVOICE_NO,
              "--key", str(keys / "steel.key"))
    chain.cli("scf", "accept", "0", "--key", str(keys / "tier1.key"))
    chain.cli("scf", "split", "0", "--part", f"{keys / 'tier2.key.pem'}=300,000.00",
              "--key", str(keys / "tier1.key"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None or not CHROMIUM.exists():
        missing = "Python Playwright" if sync_playwright is None else str(CHROMIUM)
        message = (f"{missing} is missing: the explorer's browser tests need it "
                   "(apt-get install chromium)")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    root = tmp_path_factory.mktemp("explorer")
    with running_node(root, "explorer-net", UNLIMITED_READS_TOML) as node:
        yield _populate(node, root)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    artifacts = os.environ.get("TIDE_TEST_ARTIFACTS")
    where = Path(artifacts) if artifacts else tmp_path_factory.mktemp("explorer") / "screenshots"
    where.mkdir(parents=True, exist_ok=True)
    print(f"\nexplorer screenshots: {where}")
    return where


# --- a visit: one fresh browser context, every request and answer recorded ---------------


@dataclass
class Seen:
    url: str
    method: str
    body: bytes | None


class Visit:
    """A fresh browser profile on the explorer: what it requested, what was answered,
    what broke. Nothing of another visit (key, localStorage) carries over."""

    def __init__(self, browser: Browser, chain: Chain, shots: Path) -> None:
        self.chain = chain
        self.shots = shots
        self.context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        self.page: Page = self.context.new_page()
        self.requests: list[Seen] = []
        self.explorer_answers: list[tuple[str, dict[str, str]]] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(
            Seen(r.url, r.method, r.post_data_buffer)))
        self.page.on("response", self._answer)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _answer(self, response: Any) -> None:
        if urlsplit(response.url).path.startswith("/explorer/"):
            self.explorer_answers.append((response.url, response.all_headers()))

    def open(self, hash_route: str = "#/") -> Page:
        self.page.goto(f"{self.chain.node.url}/explorer/{hash_route}")
        self.page.wait_for_selector("main h1", timeout=WAIT_MS)
        return self.page

    def go(self, hash_route: str) -> Page:
        """Another page of the single-page app: the hash changes, the document (and the
        key in its memory) stays."""
        self.page.evaluate("r => { window.location.hash = r; }", hash_route)
        self.page.wait_for_function("r => window.location.hash === r", arg=hash_route)
        return self.page

    def settle(self) -> None:
        """Wait until no section is loading."""
        self.page.wait_for_function(
            "() => !document.querySelector('main [aria-busy=true]')", timeout=WAIT_MS)

    def text(self, selector: str = "main") -> str:
        return self.page.inner_text(selector)

    def expect_text(self, needle: str, selector: str = "main") -> None:
        self.page.wait_for_function(
            "([s, n]) => (document.querySelector(s)?.innerText || '').includes(n)",
            arg=[selector, needle], timeout=WAIT_MS)

    def load_key(self, path: Path) -> None:
        self.page.set_input_files("#key-file", str(path))
        self.page.wait_for_selector("#member-roles", timeout=WAIT_MS)

    def shot(self, name: str) -> None:
        self.settle()
        self.page.screenshot(path=str(self.shots / f"explorer-{name}.png"), full_page=True)

    def close(self) -> None:
        """Check what every visit must hold, then end it."""
        origin = urlsplit(self.chain.node.url)
        elsewhere = [r.url for r in self.requests
                     if urlsplit(r.url).scheme in ("http", "https", "ws", "wss")
                     and urlsplit(r.url).netloc != origin.netloc]
        assert not elsewhere, f"requests left the node's origin: {elsewhere}"
        assert self.explorer_answers, "no explorer file was served"
        for url, headers in self.explorer_answers:
            assert headers.get("content-security-policy") == CSP, url
            assert headers.get("x-content-type-options") == "nosniff", url
        assert not self.errors, f"errors in the page: {self.errors}"
        self.context.close()


@pytest.fixture
def visit(browser: Browser, chain: Chain, shots: Path) -> Iterator[Visit]:
    v = Visit(browser, chain, shots)
    yield v
    v.close()


# --- serving --------------------------------------------------------------------------------


def test_the_explorer_is_served_with_its_csp_and_nothing_else(chain: Chain) -> None:
    url = chain.node.url
    with httpx.Client(base_url=url, timeout=10) as http:
        root = http.get("/")
        assert root.status_code == 302 and root.headers["location"] == "/explorer/"
        assert root.headers["content-security-policy"] == CSP
        page = http.get("/explorer/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        for path, kind in (("/explorer/js/app.js", "text/javascript"),
                           ("/explorer/js/httpsig.js", "text/javascript"),
                           ("/explorer/css/explorer.css", "text/css")):
            answer = http.get(path)
            assert answer.status_code == 200, path
            assert answer.headers["content-type"].startswith(kind), path
            assert answer.headers["content-security-policy"] == CSP
            assert answer.headers["x-content-type-options"] == "nosniff"
        # The standalone verifier, to keep: the bytes `tide explorer verify-html` writes.
        standalone = http.get(STANDALONE_VERIFIER)
        assert standalone.status_code == 200
        assert standalone.headers["content-disposition"] == 'attachment; filename="verify.html"'
        assert standalone.content == build_verify_html().encode("utf-8")
        # No directory listing, nothing outside static/, no hidden files, no unknown types.
        for path in ("/explorer/js/", "/explorer/js", "/explorer/%2e%2e/routes.py",
                     "/explorer/..%2f__init__.py", "/explorer/.hidden", "/explorer/missing.js",
                     "/explorer/js/%2e%2e/%2e%2e/routes.py"):
            refused = http.get(path)
            assert refused.status_code == 404, path
            assert refused.headers["content-security-policy"] == CSP, path
            assert "routes.py" not in refused.text and "import" not in refused.text


def test_the_pages_carry_no_inline_code_nor_third_party_assets() -> None:
    files = [p for p in STATIC_DIR.rglob("*") if p.is_file() and "vendor" not in p.parts]
    html = [p for p in files if p.suffix == ".html" and "verify" not in p.parts]
    assert html, "no HTML page"
    for page in html:
        text = page.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), f"inline script in {page}"
        assert "<style" not in text and " style=" not in text, f"inline style in {page}"
        assert not re.search(r"\son[a-z]+=", text), f"inline handler in {page}"
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), f"third party in {page}"
    for code in [p for p in files if p.suffix in (".js", ".css") and "verify" not in p.parts]:
        text = code.read_text()
        assert not re.search(r"""(from\s+|import\(\s*|url\(\s*)["']?(https?:)?//""", text), code
        assert "innerHTML" not in text and "eval(" not in text, code


# --- anonymous and member pages --------------------------------------------------------------


def test_an_anonymous_visitor_sees_the_public_status_and_members_only_messages(
        visit: Visit, chain: Chain) -> None:
    page = visit.open("#/")
    status = chain.status()
    visit.expect_text(status["origin"])
    shown = int(page.inner_text("#height"))
    assert shown >= status["height"]  # the page may already show a later block
    assert page.inner_text("#log-size").strip()
    visit.expect_text("Members only: load your key", "#latest-blocks")
    visit.shot("home-anonymous")
    for hash_route in ("#/blocks", "#/members", "#/gov"):
        visit.go(hash_route)
        visit.expect_text("Members only: load your key")
    # Public deposits are public: its digest shows, the private one does not.
    visit.go("#/deposits")
    visit.expect_text(chain.public_digest)
    visit.settle()
    assert chain.private_digest not in visit.text()
    # Public pages read without a key: contracts and the log.
    visit.go("#/contracts")
    visit.expect_text("evidence: methods")
    assert "Members only" not in visit.text()


def test_a_regulator_reads_every_page_with_a_key_loaded_in_the_browser(
        visit: Visit, chain: Chain) -> None:
    page = visit.open("#/")
    visit.load_key(chain.regulator_key)
    assert page.inner_text("#member-name") == "Market Regulator"
    assert page.inner_text("#member-roles") == "regulator"
    status = chain.status()
    visit.expect_text(status["block_hash"][:10], "#latest-blocks")
    visit.expect_text("scf.split", "#latest-txs")
    visit.shot("home")

    visit.go("#/blocks")
    visit.expect_text("Blocks, highest first")
    visit.shot("blocks")
    visit.go(f"#/block/{status['height']}")
    visit.expect_text(status["block_hash"])
    validator = status["validators"][0]
    assert visit.page.inner_text("#signers") == validator
    visit.shot("block")

    visit.go("#/txs?contract=gov")
    visit.expect_text("gov.propose")
    visit.settle()
    assert "evidence.deposit" not in visit.text()
    visit.go("#/txs")
    visit.expect_text("scf.split")
    visit.shot("transactions")

    tx_id = httpx.get(f"{chain.node.url}/v1/apps/evidence/deposits",
                      params={"digest": chain.public_digest}).json()["items"][0]["tx"]
    visit.go(f"#/tx/{tx_id}")
    visit.expect_text("evidence.deposit", "#main")
    visit.expect_text(chain.public_digest)
    with page.expect_download() as downloaded:
        page.click("#receipt-download")
    receipt = Path(downloaded.value.path()).read_text()
    assert receipt.startswith("c2sp.org/tlog-proof@v1\n")
    assert f"\nindex {chain.public_index}\n" in receipt
    visit.shot("transaction")

    visit.go("#/deposits")
    visit.expect_text(chain.private_digest)
    visit.shot("deposits")
    visit.go(f"#/deposit/{chain.cosigned_index}")
    visit.expect_text("Co-signers")
    assert page.inner_text("#deposit-status") == "effective"
    visit.expect_text("Huangpu Carrier")
    visit.shot("deposit")

    visit.go("#/members")
    visit.expect_text("acme")
    visit.go("#/members?org=acme")
    visit.expect_text("Market Regulator", "#members-list")
    visit.expect_text("Huangpu Carrier", "#members-list")
    visit.shot("members")
    visit.go(f"#/member/{chain.carrier_key_hex}")
    visit.expect_text("Huangpu Carrier")
    visit.shot("member")

    visit.go("#/validators")
    visit.expect_text(status["validator_set"]["validators"][0]["key"])
    visit.shot("validators")

    visit.go("#/gov")
    visit.expect_text("set_param", "#proposals")
    visit.shot("governance")
    visit.go(f"#/gov/{chain.proposal_id}")
    visit.expect_text("consensus.max_block_txs")
    visit.shot("proposal")

    visit.go(f"#/invoices?issuer={chain.issuer_hex}")
    visit.expect_text(INVOICE_NO, "#invoices-list")
    visit.expect_text("Minhang Coil Processing")
    visit.shot("invoices")
    invoice = httpx.get(f"{chain.node.url}/v1/apps/invoice/invoice",
                        params={"number": INVOICE_NO},
                        headers=_signed_headers(chain, "/v1/apps/invoice/invoice",
                                                f"number={INVOICE_NO}")).json()
    visit.go(f"#/invoices?month={invoice['period']}&of={SUPPLIER_TAX_ID}")
    visit.expect_text("CNY 1,084,800.00 in 1 invoice")
    visit.go(f"#/invoice/{INVOICE_NO}")
    visit.expect_text("CNY 1,084,800.00")
    visit.shot("invoice")
    sealed = invoice["sealed"]
    assert sealed["ciphertext"][:24] not in visit.text(), "sealed content shown"
    visit.go(f"#/tx/{_first_tx(chain, 'invoice', 'issue')}")
    visit.expect_text("invoice.issue")
    visit.settle()
    assert sealed["ciphertext"][:24] not in visit.text(), "sealed content shown"

    visit.go("#/scf?id=1")
    visit.expect_text("CNY 300,000.00", "#scf-tree")
    visit.expect_text(INVOICE_NO, "#scf-lineage")
    visit.shot("scf")

    visit.go("#/contracts")
    visit.expect_text("scf: methods")
    visit.shot("contracts")

    visit.go(f"#/search?q={chain.private_digest}")
    visit.expect_text("deposits of this digest")
    visit.shot("search")
    visit.go(f"#/entry/{chain.cosigned_index}")
    visit.expect_text("evidence.deposit")
    visit.shot("entry")


def test_a_member_without_the_role_is_told_its_roles(visit: Visit, chain: Chain) -> None:
    page = visit.open("#/gov")
    visit.load_key(chain.root / "carrier.key")
    assert page.inner_text("#member-roles") == "depositor"
    visit.expect_text("Your roles: depositor")
    visit.expect_text("admin, regulator")
    visit.shot("forbidden")
    # A party reads what it is a party to: the deposit it co-signed, not the others'.
    visit.go("#/deposits")
    visit.settle()
    visit.expect_text(chain.public_digest, "#deposit-results")
    results = visit.text("#deposit-results")
    assert chain.private_digest not in results
    cosigned = httpx.get(f"{chain.node.url}/v1/apps/evidence/deposit",
                         params={"index": chain.cosigned_index},
                         headers=_signed_headers(chain, "/v1/apps/evidence/deposit",
                                                 f"index={chain.cosigned_index}")).json()
    assert cosigned["digest"] in results


def _signed_headers(chain: Chain, path: str, query: str = "") -> dict[str, str]:
    url = f"{chain.node.url}{path}" + (f"?{query}" if query else "")
    return sign_headers("GET", url, {}, read_key(chain.regulator_key).key,
                        created_s=int(time.time()), nonce=secrets.token_hex(16))


def _first_tx(chain: Chain, contract: str, method: str) -> str:
    answer = httpx.get(f"{chain.node.url}/v1/txs",
                       params={"contract": contract, "method": method},
                       headers=_signed_headers(chain, "/v1/txs",
                                               f"contract={contract}&method={method}")).json()
    tx_id: str = answer["items"][0]["tx_id"]
    return tx_id


# --- signing in the browser ------------------------------------------------------------------


def test_the_browser_signs_exactly_as_the_sdk_and_the_node_accepts_it(
        visit: Visit, chain: Chain) -> None:
    page = visit.open("#/contracts")
    signer = read_key(chain.regulator_key)
    key_text = chain.regulator_key.read_text()
    cases = [
        f"{chain.node.url}/v1/apps/evidence/deposits?digest={chain.private_digest}&limit=2",
        f"{chain.node.url}/v1/blocks",
        "http://LOCALHOST:80/v1/status?",
        "https://node.example:443/v1/apps/members/member?key=" + "ab" * 32,
        "http://127.0.0.1:8680/v1/txs?cursor=AAAAAAAAAAE&contract=evidence",
    ]
    created_s, nonce = 1_796_000_000, "0123456789abcdef-_~"
    got = page.evaluate(
        """async ([keyText, urls, created, nonce]) => {
             const { loadKey } = await import('/explorer/js/keyfile.js');
             const { signHeaders } = await import('/explorer/js/httpsig.js');
             const signer = await loadKey(keyText);
             const out = [];
             for (const url of urls) {
               out.push(await signHeaders('GET', url, signer, { createdS: created, nonce }));
             }
             return { key: signer.publicKeyHex, headers: out };
           }""", [key_text, cases, created_s, nonce])
    assert got["key"] == signer.key.public_key.hex()
    for url, headers in zip(cases, got["headers"], strict=True):
        want = sign_headers("GET", url, {}, signer.key, created_s=created_s, nonce=nonce)
        assert headers == want, url
    # The node accepts what the page signs: a members-only read answers 200 as this
    # member, and a key file whose id does not match its key is refused in the page.
    answered = page.evaluate(
        """async (keyText) => {
             const api = await import('/explorer/js/api.js');
             const { loadKey } = await import('/explorer/js/keyfile.js');
             api.setSigner(await loadKey(keyText));
             const r = await api.apiFetch('/v1/apps/members/orgs');
             const me = await api.getJSON('/v1/apps/members/member?key='
                                          + api.currentSigner().publicKeyHex);
             let refused = '';
             try { await loadKey(keyText.replace(/\\+[0-9a-f]{8}\\+/, '+00000000+')); }
             catch (e) { refused = e.message; }
             return { status: r.status, name: me.name, refused };
           }""", key_text)
    # Without WebCrypto (an insecure context), the vendored @noble/ed25519 signs the same
    # bytes: Ed25519 is deterministic.
    fallback = page.evaluate(
        """async ([keyText, url, created, nonce]) => {
             const crypto = await import('/explorer/js/crypto.js');
             const { loadKey } = await import('/explorer/js/keyfile.js');
             const { signHeaders } = await import('/explorer/js/httpsig.js');
             crypto.setWebCryptoAllowed(false);
             try {
               const signer = await loadKey(keyText);
               const headers = await signHeaders('GET', url, signer, { createdS: created, nonce });
               return { via: signer.via, headers };
             } finally { crypto.setWebCryptoAllowed(true); }
           }""", [key_text, cases[0], created_s, nonce])
    assert "noble" in fallback["via"]
    assert fallback["headers"] == sign_headers("GET", cases[0], {}, signer.key,
                                               created_s=created_s, nonce=nonce)
    assert answered["status"] == 200
    assert answered["name"] == "Market Regulator"
    assert "key id does not match" in answered["refused"]


# --- drop a document -------------------------------------------------------------------------


def test_a_dropped_document_finds_its_deposit_and_is_never_sent(
        visit: Visit, chain: Chain) -> None:
    page = visit.open("#/deposits")
    visit.load_key(chain.regulator_key)
    visit.settle()
    before = len(visit.requests)
    page.set_input_files("#document", str(chain.private_doc))
    visit.expect_text(chain.private_digest, "#document-digest")
    visit.page.wait_for_function(
        "d => window.location.hash.includes(d)", arg=chain.private_digest, timeout=WAIT_MS)
    visit.settle()
    visit.expect_text(str(chain.private_index), "#deposit-results")
    visit.expect_text(chain.private_digest, "#deposit-results")
    visit.shot("drop-a-document")
    document = chain.private_doc.read_bytes()
    after = visit.requests[before:]
    assert any(chain.private_digest in r.url for r in after), "the digest was not looked up"
    for r in visit.requests:
        assert r.method == "GET", f"{r.method} {r.url}"
        assert not r.body or document[:32] not in r.body, r.url
        assert document[:32].hex() not in r.url


# --- log consistency -------------------------------------------------------------------------


def _another_chains_checkpoint(origin: str, size: int) -> dict[str, Any]:
    """The (origin, size, root) of a log with the same origin but other entries."""
    leaves = [leaf_hash(b"forged entry %d" % i) for i in range(size)]
    store, frontier = MemoryNodeStore(), CompactRange()
    for leaf in leaves:
        for level, index, value in frontier.append(leaf):
            store.put(level, index, value)
    return {"origin": origin, "size": size, "root": encode_base64(frontier.root())}


def test_the_log_page_verifies_new_checkpoints_and_raises_the_fork_alarm(
        visit: Visit, chain: Chain) -> None:
    page = visit.open("#/")
    before = chain.status()
    page.wait_for_function("() => localStorage.getItem('tidechain.explorer.checkpoint')",
                           timeout=WAIT_MS)
    remembered = json.loads(page.evaluate(
        "() => localStorage.getItem('tidechain.explorer.checkpoint')"))
    assert remembered["origin"] == before["origin"]
    assert remembered["size"] >= before["log_size"]
    # A new block: the home page follows it live (server-sent events), and the page
    # verifies the new checkpoint against the remembered one.
    extra = chain.root / "late-document.txt"
    extra.write_text("a document deposited while the explorer watches\n")
    made = chain.cli_json("deposit", str(extra))
    page.wait_for_function("h => Number(document.querySelector('#height')?.innerText) >= h",
                           arg=made["height"], timeout=WAIT_MS)
    assert any(urlsplit(r.url).path == "/v1/events" for r in visit.requests)
    visit.expect_text("server-sent events", "#live")
    visit.go("#/log")
    visit.expect_text(f"to {made['checkpoint_size']} entries", "#log-consistent")
    visit.expect_text("Consistent", "#log-consistent")
    page.click("text=Check now")
    visit.expect_text("Unchanged", "#log-result")
    assert page.is_hidden("#alarm")
    visit.shot("log")
    # A checkpoint of another chain (same origin, other entries) remembered: fork alarm.
    forged = _another_chains_checkpoint(before["origin"], 2)
    page.evaluate("c => localStorage.setItem('tidechain.explorer.checkpoint', c)",
                  json.dumps(forged))
    page.reload()
    page.wait_for_selector("#alarm:not([hidden])", timeout=WAIT_MS)
    assert "Fork alarm" in page.inner_text("#alarm")
    assert "does not verify" in page.inner_text("#alarm")
    page.wait_for_selector("#log-fork", timeout=WAIT_MS)
    visit.shot("log-fork")
    # And a checkpoint of a chain with another origin.
    page.evaluate("c => localStorage.setItem('tidechain.explorer.checkpoint', c)",
                  json.dumps({**forged, "origin": "tidechain/other-net/0123456789abcdef"}))
    page.reload()
    page.wait_for_selector("#alarm:not([hidden])", timeout=WAIT_MS)
    assert "another chain" in page.inner_text("#alarm")
    # Forgetting the old checkpoint is the visitor's decision; then all is well.
    page.click("#alarm button")
    page.wait_for_selector("#alarm", state="hidden", timeout=WAIT_MS)


def test_consistency_js_agrees_with_core_merkle(visit: Visit, chain: Chain) -> None:
    page = visit.open("#/log")
    leaves = [leaf_hash(sha256(b"entry %d" % i)) for i in range(70)]
    store, frontier = MemoryNodeStore(), CompactRange()
    for leaf in leaves:
        for level, index, value in frontier.append(leaf):
            store.put(level, index, value)
    roots = {n: encode_base64(root_at(store, n)) for n in range(1, len(leaves) + 1)}
    cases = []
    for m in range(1, 70):
        for n in sorted({m, m + 1, m + 2, 2 * m, 64, 69, 70}):
            if m <= n <= 70:
                proof = [encode_base64(h) for h in consistency_proof(store, m, n)]
                other = roots[m + 1] if m < 70 else roots[1]
                cases.append({"m": m, "n": n, "proof": proof, "r1": roots[m], "r2": roots[n],
                              "bad1": other})
    results = page.evaluate(
        """async (cases) => {
             const c = await import('/explorer/js/consistency.js');
             const b = await import('/explorer/js/bytes.js');
             const h = (x) => b.fromBase64(x);
             const run = async (m, n, proof, r1, r2) => {
               try { await c.verifyConsistency(m, n, proof.map(h), h(r1), h(r2)); return 'ok'; }
               catch (e) { return e.message; }
             };
             const out = [];
             for (const k of cases) {
               const r = { good: await run(k.m, k.n, k.proof, k.r1, k.r2) };
               r.length = k.m < k.n ? c.consistencyLength(k.m, k.n) : 0;
               r.wrongOld = await run(k.m, k.n, k.proof, k.bad1, k.r2);
               r.wrongNew = await run(k.m, k.n, k.proof, k.r1, k.bad1);
               if (k.proof.length) {
                 const p = k.proof.slice();
                 const last = h(p[p.length - 1]);
                 last[31] ^= 0x80;
                 p[p.length - 1] = b.toBase64(last);
                 r.tampered = await run(k.m, k.n, p, k.r1, k.r2);
                 r.shorter = await run(k.m, k.n, k.proof.slice(1), k.r1, k.r2);
               }
               r.longer = await run(k.m, k.n, [...k.proof, k.r1], k.r1, k.r2);
               out.push(r);
             }
             return out;
           }""", cases)
    for case, result in zip(cases, results, strict=True):
        where = f"{case['m']} -> {case['n']}"
        assert result["good"] == "ok", f"{where}: {result['good']}"
        assert result["length"] == len(case["proof"]), where
        assert result["longer"] != "ok", where
        if case["proof"]:
            assert result["tampered"] != "ok", where
            assert result["shorter"] != "ok", where
        assert result["wrongOld"] != "ok", where
        if case["bad1"] != case["r2"]:
            assert result["wrongNew"] != "ok", where


# --- keyboard --------------------------------------------------------------------------------


def test_the_keyboard_reaches_the_navigation_and_follows_a_link(visit: Visit) -> None:
    page = visit.open("#/")
    visit.settle()
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    reached = None
    for _ in range(20):
        page.keyboard.press("Tab")
        reached = page.evaluate(
            "() => { const a = document.activeElement; "
            "return a && a.closest('nav.nav') ? a.textContent : null; }")
        if reached == "Blocks":
            break
    assert reached == "Blocks", "Tab never reached the navigation's Blocks link"
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused link shows no focus"
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.location.hash === '#/blocks'", timeout=WAIT_MS)
    page.wait_for_function(
        "() => document.querySelector('main h1')?.innerText === 'Blocks'", timeout=WAIT_MS)
    assert page.evaluate("() => document.activeElement.tagName") == "H1"


# --- the verify page ------------------------------------------------------------------------


def test_the_verify_page_checks_a_receipt_in_the_browser(visit: Visit, chain: Chain) -> None:
    if not (STATIC_DIR / "verify" / "verify.js").is_file():
        pytest.skip("static/verify/verify.js (the in-browser verifier) is not there yet")
    receipt = chain.private_doc.with_name(chain.private_doc.name + ".tlog-proof")
    assert receipt.is_file()
    page = visit.open("#/verify")
    page.set_input_files("#verify-receipt", str(receipt))
    page.set_input_files("#verify-trust", str(chain.node.net / "trust.txt"))
    page.set_input_files("#verify-document", str(chain.private_doc))
    page.click("form.verify button[type=submit]")
    visit.expect_text("VERIFIED", "#verify-result")
    visit.shot("verify")
    # A document that is not the deposited one does not verify.
    other = chain.root / "not-the-document.txt"
    other.write_text("something else\n")
    page.set_input_files("#verify-receipt", str(receipt))
    page.set_input_files("#verify-trust", str(chain.node.net / "trust.txt"))
    page.set_input_files("#verify-document", str(other))
    page.click("form.verify button[type=submit]")
    visit.expect_text("REJECTED", "#verify-result")
    # Every case `tide verify` refuses (tests/test_js_verifier.py's REJECTIONS: a changed
    # entry, proof hash or signature, another trust file, a small-order key, another
    # document, ...) is REJECTED by this page too, with its reason.
    from tests.test_js_verifier import REJECTIONS

    for n, (case, (bad_receipt, trust, document, reason)) in enumerate(REJECTIONS.items()):
        names = [chain.root / f"rejected-{n}{suffix}"
                 for suffix in (".tlog-proof", "-trust.txt", "-doc.bin")]
        for path, data in zip(names, (bad_receipt, trust, document), strict=True):
            path.write_bytes(data.encode() if isinstance(data, str) else data)
        page.set_input_files("#verify-receipt", str(names[0]))
        page.set_input_files("#verify-trust", str(names[1]))
        page.set_input_files("#verify-document", str(names[2]))
        page.click("form.verify button[type=submit]")
        page.wait_for_function(
            "([want]) => document.querySelector('#verify-result').innerText.includes(want)",
            arg=[reason], timeout=30_000)
        assert "REJECTED" in page.inner_text("#verify-result"), case
    visit.shot("verify-rejected")
    assert page.evaluate("() => fetch('verify/verify.html').then(r => r.status)") == 200
    with page.expect_download() as downloaded:
        page.click("#standalone")
    assert downloaded.value.suggested_filename == "verify.html"
    assert Path(downloaded.value.path()).read_bytes() == build_verify_html().encode("utf-8")
    assert not any(r.method != "GET" or r.body for r in visit.requests)


def test_docs_images_are_screenshots_of_the_pages() -> None:
    images = sorted((Path(__file__).parents[1] / "docs" / "images").glob("explorer-*.png"))
    assert len(images) >= 3
    for image in images:
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image

