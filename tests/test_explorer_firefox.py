"""The web explorer and the standalone receipt verifier in Firefox (issue 16).

Debian's firefox-esr, never a downloaded build, driven over Mozilla's Marionette
protocol with Mozilla's `marionette_driver` client (Playwright drives only its own
patched Firefox). Firefox starts headless on a fresh profile whose prefs turn off
everything that phones home (updates, telemetry, safe browsing, captive portal and
connectivity checks, remote settings, predictions); Marionette listens on a port it
picks itself and writes to the profile (`marionette.port` 0, `MarionetteActivePort`),
so no port can be taken between choosing and binding it. Every request for anything
but loopback goes to a recording proxy that answers nothing: the tests assert it saw
none.

What a page did wrong is read two ways: listeners installed in the page through
ExecuteScript as soon as it has loaded, before anything is given to it (`error`,
`unhandledrejection`, `securitypolicyviolation`, and the page's console.error), and,
for what happened while the page loaded, the browser console's script errors and CSP
reports for web content, read from the chrome context (`-remote-allow-system-access`).

The standalone verify.html opens from file:// and must say what chromium says
(tests/test_js_verifier.py, whose receipts and rejections these are); the served
explorer comes from a real node. File inputs cannot be filled by a script the way a
visitor fills them, but a DataTransfer's FileList can be assigned to one and a
`change` event dispatched, which is what the pages listen to. Screenshots
(`firefox-*.png`) go to $TIDE_TEST_ARTIFACTS when it is set, else to tmp_path.
Skipped with a message without Firefox or marionette_driver, a failure under CI=true.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socketserver
import subprocess
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.nodes import RunningNode, running_node, tide
from tests.test_js_verifier import (
    DIGEST,
    DOCUMENT,
    NETWORK,
    RECEIPT,
    REJECTIONS,
    SMALL_ORDER_FORGERY,
    TRUST,
    changed_entry,
)
from tidechain.core.crypto import sha256
from tidechain.explorer.verify_html import build_verify_html

try:
    with warnings.catch_warnings():  # mozinfo's distro call, mozrunner's telnetlib: not ours
        warnings.simplefilter("ignore", DeprecationWarning)
        from marionette_driver import errors as marionette_errors
        from marionette_driver.by import By
        from marionette_driver.marionette import Marionette
except ImportError:  # pragma: no cover - the dev extra installs it
    Marionette = None

pytestmark = pytest.mark.timeout(240)

FIREFOX = shutil.which("firefox-esr") or shutil.which("firefox")
IN_CI = os.environ.get("CI") == "true"
STARTUP_S = 90.0
"""The longest Firefox may take to open Marionette on a busy machine: a failure bound."""
WAIT_S = 30.0
"""The longest a test waits for something to show on a page: a failure, never a measure."""
POLL_S = 0.05
MAX_REQUEST_LINE = 8192
"""A proxy request line is a method, a URL and a version: longer ones are cut there."""
MAX_RECORDED = 1000
"""Request lines the proxy keeps between two checks: enough to show what went out."""

PREFS: dict[str, bool | int | str] = {
    # Marionette on a port of Firefox's choosing, written to <profile>/MarionetteActivePort.
    "marionette.port": 0,
    # No updates of Firefox, its add-ons or search engines.
    "app.update.disabledForTesting": True,
    "app.update.enabled": False,
    "app.update.auto": False,
    "extensions.update.enabled": False,
    "extensions.systemAddon.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.blocklist.enabled": False,
    "browser.search.update": False,
    "media.gmp-manager.updateEnabled": False,
    # No telemetry, data reporting, studies or experiments.
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.archive.enabled": False,
    "toolkit.telemetry.server": "",
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.policy.dataSubmissionPolicyBypassNotification": True,
    "app.normandy.enabled": False,
    "app.shield.optoutstudies.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "browser.ping-centre.telemetry": False,
    "services.settings.server": "data:,#remote-settings-dummy/v1",  # as Marionette sets it
    # No safe-browsing lists, captive portal or connectivity probes, DNS over HTTPS.
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.downloads.remote.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.trr.mode": 5,
    # No predictions, prefetches or speculative connections.
    "network.predictor.enabled": False,
    "network.prefetch-next": False,
    "network.dns.disablePrefetch": True,
    "network.http.speculative-parallel-limit": 0,
    "browser.urlbar.speculativeConnect.enabled": False,
    # No first-run pages, default-browser question, new-tab feeds, accounts or push.
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.page": 0,
    "browser.startup.homepage": "about:blank",
    "browser.startup.homepage_override.mstone": "ignore",
    "startup.homepage_welcome_url": "about:blank",
    "startup.homepage_welcome_url.additional": "",
    "browser.aboutwelcome.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.newtabpage.activity-stream.feeds.topsites": False,
    "browser.newtabpage.activity-stream.feeds.section.topstories": False,
    "browser.topsites.contile.enabled": False,
    "identity.fxaccounts.enabled": False,
    "dom.push.connection.enabled": False,
    "geo.provider.network.url": "",
    # Whatever still asks for the outside goes to the recording proxy; loopback never.
    "network.proxy.type": 1,
    "network.proxy.allow_hijacking_localhost": False,
    "network.proxy.no_proxies_on": "localhost, 127.0.0.1",
}


def need(what: str, present: bool, install: str) -> None:
    """Skip without `what`, except under CI, where its absence is a failure."""
    if present:
        return
    message = f"{what} is missing: the Firefox tests need it ({install})"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


# --- a recording proxy: what Firefox asked of the outside world ---------------------------


class _Record(socketserver.StreamRequestHandler):
    timeout = 10  # seconds a client may take to send its request line

    def handle(self) -> None:
        line = self.rfile.readline(MAX_REQUEST_LINE).decode("latin-1").strip()
        server: _Recorder = self.server  # type: ignore[assignment]
        with server.lock:
            if len(server.seen) < MAX_RECORDED:
                server.seen.append(line)
        # Answering nothing: the connection closes, the request fails.


class _Recorder(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Record)
        self.lock = threading.Lock()
        self.seen: list[str] = []

    def taken(self) -> list[str]:
        """The request lines seen since the last call."""
        with self.lock:
            seen, self.seen = self.seen, []
        return seen


# --- Firefox over Marionette -------------------------------------------------------------

PROBE = """
const seen = { errors: [], violations: [] };
window.addEventListener("error", (e) =>
  seen.errors.push(`${e.message} (${e.filename}:${e.lineno})`));
window.addEventListener("unhandledrejection", (e) =>
  seen.errors.push(`unhandled rejection: ${e.reason}`));
document.addEventListener("securitypolicyviolation", (e) =>
  seen.violations.push(`${e.effectiveDirective} refused ${e.blockedURI || "inline"}`
                       + ` (${e.sourceFile}:${e.lineNumber})`));
// The page's own console.error calls too (waived: the page's console, not an Xray).
const pageConsole = window.wrappedJSObject.console;
const pageError = pageConsole.error;
pageConsole.error = function (...args) {
  seen.errors.push(`console.error: ${args.map(String).join(" ")}`);
  return pageError.apply(pageConsole, args);
};
globalThis.tideProbe = seen;
"""
"""Listeners that record what goes wrong in the page from now on (kept in the named
sandbox's global, which lives as long as the document)."""

CONSOLE = """
const [sinceMs] = arguments;
const out = [];
for (const m of Services.console.getMessageArray()) {
  if (!(m instanceof Ci.nsIScriptError) || m.isFromChromeContext) continue;
  if (m.timeStamp < sinceMs || (m.flags & (Ci.nsIScriptError.warningFlag
                                          | Ci.nsIScriptError.infoFlag))) continue;
  out.push(`${m.category}: ${m.errorMessage} (${m.sourceName}:${m.lineNumber})`);
}
return out;
"""
"""Script errors and CSP reports the browser console holds for web content since
`sinceMs` (a page's console.error calls stay in its content process: the probe wraps
them): what happened before a probe could listen."""

GIVE_FILES = """
const [files] = arguments;
for (const [id, name, b64] of files) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], name));
  const input = document.getElementById(id);
  input.files = dt.files;
  input.dispatchEvent(new Event("change", { bubbles: true }));
}
"""

VISIBLE = """
const el = document.querySelector(arguments[0]);
return el !== null && !el.hidden && el.getClientRects().length > 0;
"""


@dataclass
class Firefox:
    marionette: Any
    process: subprocess.Popen[bytes]
    proxy: _Recorder
    version: str
    shots: Path
    since_ms: float = field(default_factory=lambda: time.time() * 1000)

    def open(self, url: str) -> None:
        """Load `url` and start listening for the page's errors and CSP reports."""
        self.marionette.navigate(url)
        self.run(PROBE)

    def run(self, script: str, *args: Any) -> Any:
        """The script's result, run in the page (through a sandbox kept per document)."""
        return self.marionette.execute_script(script, script_args=list(args),
                                              sandbox="tide", new_sandbox=False)

    def wait_for(self, script: str, *args: Any, what: str) -> Any:
        """The script's first truthy result, polled; a failure after WAIT_S."""
        deadline = time.monotonic() + WAIT_S
        while True:
            result = self.run(script, *args)
            if result:
                return result
            if time.monotonic() > deadline:
                pytest.fail(f"Firefox: {what} not seen after {WAIT_S} s")
            time.sleep(POLL_S)

    def text(self, selector: str) -> str:
        text: str = self.run(
            "return document.querySelector(arguments[0])?.innerText ?? ''", selector)
        return text

    def expect_text(self, needle: str, selector: str) -> None:
        self.wait_for("return (document.querySelector(arguments[0])?.innerText ?? '')"
                      ".includes(arguments[1])", selector, needle,
                      what=f"{needle!r} in {selector}")

    def visible(self, selector: str) -> bool:
        return bool(self.run(VISIBLE, selector))

    def give_files(self, *files: tuple[str, str, bytes]) -> None:
        """(input id, file name, bytes): as if the visitor chose each file."""
        self.run(GIVE_FILES, [[i, n, base64.b64encode(b).decode()] for i, n, b in files])

    def click(self, selector: str) -> None:
        self.marionette.find_element(By.CSS_SELECTOR, selector).click()

    def shot(self, name: str) -> None:
        png = base64.b64decode(self.marionette.screenshot(full=True))
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        (self.shots / f"firefox-{name}.png").write_bytes(png)

    def page_problems(self) -> dict[str, list[str]]:
        """What the probe recorded in the current page."""
        problems: dict[str, list[str]] = self.run("return globalThis.tideProbe")
        assert problems is not None, "the probe is not installed in this page"
        return problems

    def console_errors(self) -> list[str]:
        """Errors the browser console recorded for pages since the last call."""
        since, self.since_ms = self.since_ms, time.time() * 1000
        with self.marionette.using_context("chrome"):
            errors: list[str] = self.marionette.execute_script(CONSOLE, script_args=[since])
        return errors

    def assert_clean(self) -> None:
        """No script error, CSP report or outside request since the last check."""
        problems = self.page_problems()
        assert problems == {"errors": [], "violations": []}, problems
        assert self.console_errors() == []
        outside = self.proxy.taken()
        assert outside == [], f"Firefox asked beyond loopback: {sorted(Counter(outside).items())}"


def _start(profile: Path, log_path: Path, proxy_port: int) -> subprocess.Popen[bytes]:
    assert FIREFOX is not None
    prefs = {**PREFS, "network.proxy.http": "127.0.0.1", "network.proxy.http_port": proxy_port,
             "network.proxy.ssl": "127.0.0.1", "network.proxy.ssl_port": proxy_port}
    profile.mkdir()
    (profile / "user.js").write_text("".join(
        f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items()))
    env = {**os.environ, "MOZ_HEADLESS": "1", "MOZ_CRASHREPORTER_DISABLE": "1",
           # Release builds honour services.settings.server only with this set.
           "MOZ_REMOTE_SETTINGS_DEVTOOLS": "1"}
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [FIREFOX, "-marionette", "-headless", "-no-remote", "-remote-allow-system-access",
             "-profile", str(profile)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)  # its own process group: its content processes too


def _marionette_port(process: subprocess.Popen[bytes], profile: Path, log_path: Path) -> int:
    written = profile / "MarionetteActivePort"
    deadline = time.monotonic() + STARTUP_S
    while not written.is_file() or not written.read_text().strip():
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"Firefox did not open Marionette (exit {process.poll()}):\n"
                        f"{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return int(written.read_text())


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=20)
    # Content processes that outlived the parent: the group is the one started above.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def firefox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Firefox]:
    need("Firefox (firefox-esr)", FIREFOX is not None, "apt-get install firefox-esr")
    need("marionette_driver", Marionette is not None, "pip install -e '.[dev]'")
    root = tmp_path_factory.mktemp("firefox")
    artifacts = os.environ.get("TIDE_TEST_ARTIFACTS")
    shots = Path(artifacts) if artifacts else root / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    proxy = _Recorder()
    proxy_thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    proxy_thread.start()
    log_path = root / "firefox.log"
    process = _start(root / "profile", log_path, proxy.server_address[1])
    marionette = None
    try:
        port = _marionette_port(process, root / "profile", log_path)
        marionette = Marionette(host="127.0.0.1", port=port, socket_timeout=WAIT_S * 2)
        session = marionette.start_session(timeout=STARTUP_S)
        marionette.timeout.script = WAIT_S
        marionette.timeout.page_load = WAIT_S
        version = f"{session['browserName']} {session['browserVersion']}"
        print(f"\n{version} ({FIREFOX}); screenshots in {shots}")
        yield Firefox(marionette, process, proxy, version, shots)
    finally:
        if marionette is not None and marionette.session_id is not None:
            with contextlib.suppress(marionette_errors.MarionetteException, OSError):
                marionette.delete_session()
        _stop(process)
        proxy.shutdown()
        proxy.server_close()
        proxy_thread.join(timeout=10)


# --- the standalone verify.html from file:// -------------------------------------------------

VERDICT = "return document.getElementById('verdict').dataset.inputs === arguments[0]"


@pytest.mark.parametrize("engine", ["webcrypto", "js"])
def test_the_standalone_page_verifies_offline_in_firefox(firefox: Firefox, tmp_path: Path,
                                                         engine: str) -> None:
    """verify.html opened from disk says what chromium says: VERIFIED for the real
    receipt, REJECTED with the failed step named for every rejection (the small-order
    key among them); with Firefox's WebCrypto, then with the page's own JavaScript."""
    page = tmp_path / "verify.html"
    page.write_text(build_verify_html())
    firefox.open(page.as_uri() + ("?engine=js" if engine == "js" else ""))

    def verdict(receipt: tuple[str, bytes], trust: tuple[str, bytes],
                document: tuple[str, bytes], shot: str | None = None) -> tuple[str, str]:
        firefox.give_files(("receipt-file", *receipt), ("trust-file", *trust),
                           ("document-file", *document))
        inputs = f"{receipt[0]}|{trust[0]}|{document[0]}"
        firefox.wait_for(VERDICT, inputs, what=f"the verdict on {inputs}")
        if shot is not None:
            firefox.shot(f"{engine}-{shot}")
        return firefox.text("#verdict-word"), firefox.text("#verdict")

    trust = ("trust.txt", TRUST.encode())
    document = ("document.txt", DOCUMENT)
    word, text = verdict(("receipt.tlog-proof", RECEIPT.encode()), trust, document, "verified")
    assert word == "VERIFIED", text
    assert DIGEST.hex() in text and "evidence.deposit" in text
    assert f"{NETWORK}/node0, {NETWORK}/node1, {NETWORK}/node2" in text
    used = firefox.text("#engine")
    expected = "pure JavaScript (noble)" if engine == "js" else "the browser's WebCrypto"
    assert used == f"SHA-256 by {expected}, Ed25519 by {expected}", used

    word, text = verdict(("changed.tlog-proof", changed_entry()), trust, document, "changed")
    assert word == "REJECTED" and "inclusion proof" in text, text
    assert not firefox.visible("#proven") and DIGEST.hex() not in text, text

    forged = SMALL_ORDER_FORGERY
    word, text = verdict(("forged.tlog-proof", forged.receipt.encode()),
                         ("forged-trust.txt", forged.trust.encode()), document, "small-order")
    assert word == "REJECTED" and "small-order point" in text, text
    assert not firefox.visible("#proven") and "Depositor" not in text, text

    for n, (case, (receipt_data, trust_data, document_data, reason)) in enumerate(
            REJECTIONS.items()):
        def named(name: str, data: str | bytes) -> tuple[str, bytes]:
            return name, data.encode() if isinstance(data, str) else data

        word, text = verdict(named(f"case{n}.tlog-proof", receipt_data),
                             named(f"case{n}-trust.txt", trust_data),
                             named(f"case{n}-doc.bin", document_data))
        assert word == "REJECTED" and reason in text, (case, text)
        assert not firefox.visible("#proven"), case

    firefox.assert_clean()
    print(f"{firefox.version}, {engine}: {used}; {len(REJECTIONS) + 2} rejections")


# --- the explorer served by a real node --------------------------------------------------------


@dataclass
class Deposited:
    node: RunningNode
    document: Path
    receipt: Path
    trust: Path


@pytest.fixture(scope="module")
def deposited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deposited]:
    """A node with a deposit made by `tide deposit`: its document, receipt, trust file."""
    root = tmp_path_factory.mktemp("firefox-node")
    with running_node(root, "firefox-net") as node:
        document = root / "bill of lading 7781.pdf"
        document.write_bytes(b"%PDF-1.7 bill of lading 7781, MV Huangpu Star\n")
        made = tide("deposit", str(document), "--public", "--meta", "kind=bl", "--json",
                    env={"TIDE_NET": str(node.net)}, cwd=root)
        assert made.returncode == 0, made.stderr
        yield Deposited(node, document, Path(f"{document}.tlog-proof"),
                        node.net / "trust.txt")


SETTLED = "return !document.querySelector('main [aria-busy=true]')"
HEIGHT_MATCHES = """
const shown = document.getElementById("height")?.innerText;
return shown === String(arguments[0]) ? shown : null;
"""


def test_the_served_explorer_works_in_firefox(firefox: Firefox, deposited: Deposited) -> None:
    """Home shows the node's height and follows it live; the public pages show the
    node's data; the verify page verifies a real receipt and rejects another document;
    no script error, no CSP report (while the CSP itself is enforced: an injected
    inline script is refused and reported), nothing fetched beyond the node."""
    node = deposited.node
    firefox.open(f"{node.url}/explorer/#/")
    deadline = time.monotonic() + WAIT_S
    while True:  # the page and the node agree, whatever block is the latest
        height = httpx.get(f"{node.url}/v1/status", timeout=10).json()["height"]
        if firefox.run(HEIGHT_MATCHES, height):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"home shows height {firefox.text('#height')!r}, the node {height}")
        time.sleep(POLL_S)
    assert height >= 1
    firefox.expect_text("server-sent events", "#live")  # EventSource, live updates
    firefox.wait_for(SETTLED, what="the home page loaded")
    firefox.shot("explorer-home")

    # The pages an anonymous visitor reads, and one that is for members only.
    digest = sha256(deposited.document.read_bytes()).hex()
    for hash_route, needle in (("#/deposits", digest), ("#/contracts", "evidence: methods"),
                               ("#/log", "Log consistency"),
                               ("#/blocks", "Members only: load your key")):
        firefox.run("window.location.hash = arguments[0]", hash_route)
        firefox.expect_text(needle, "main")
        firefox.wait_for(SETTLED, what=f"{hash_route} loaded")
    firefox.shot("explorer-blocks-anonymous")

    firefox.run("window.location.hash = '#/verify'")
    firefox.wait_for("return document.getElementById('verify-receipt') !== null",
                     what="the verify page")
    receipt = (deposited.receipt.name, deposited.receipt.read_bytes())
    trust = ("trust.txt", deposited.trust.read_bytes())
    firefox.give_files(("verify-receipt", *receipt), ("verify-trust", *trust),
                       ("verify-document", deposited.document.name,
                        deposited.document.read_bytes()))
    firefox.click("form.verify button[type=submit]")
    firefox.expect_text("VERIFIED", "#verify-result")
    assert firefox.text("#proven-digest") == digest
    firefox.shot("explorer-verify")
    firefox.give_files(("verify-document", "another.txt", b"not the deposited document\n"))
    firefox.click("form.verify button[type=submit]")
    firefox.expect_text("REJECTED", "#verify-result")
    assert "document does not match" in firefox.text("#verify-result")
    firefox.shot("explorer-verify-rejected")
    firefox.assert_clean()

    # The CSP is enforced, and its reports reach the probe: an inline script is refused.
    firefox.run("""
      const s = document.createElement("script");
      s.textContent = "document.documentElement.dataset.inlineRan = 'yes'";
      document.head.append(s);""")
    violations = firefox.wait_for("return globalThis.tideProbe.violations.length && "
                                  "globalThis.tideProbe.violations",
                                  what="a CSP report for an injected inline script")
    assert len(violations) == 1 and violations[0].startswith("script-src-elem"), violations
    assert firefox.run("return document.documentElement.dataset.inlineRan") is None
    assert any("Content-Security-Policy" in e for e in firefox.console_errors())


def test_the_served_standalone_page_works_in_firefox(firefox: Firefox,
                                                     deposited: Deposited) -> None:
    """verify/verify.html as a node serves it: its modules fetched one by one under
    the node's CSP, and a verdict."""
    firefox.open(f"{deposited.node.url}/explorer/verify/verify.html")
    firefox.give_files(("receipt-file", deposited.receipt.name, deposited.receipt.read_bytes()),
                       ("trust-file", "trust.txt", deposited.trust.read_bytes()),
                       ("document-file", deposited.document.name,
                        deposited.document.read_bytes()))
    inputs = f"{deposited.receipt.name}|trust.txt|{deposited.document.name}"
    firefox.wait_for(VERDICT, inputs, what="the verdict")
    assert firefox.text("#verdict-word") == "VERIFIED", firefox.text("#verdict")
    assert "firefox-net/node0" in firefox.text("#proven")
    firefox.shot("served-verify")
    firefox.assert_clean()
