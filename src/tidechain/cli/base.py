"""What every `tide` command module shares: the output (human lines or one JSON
document), the common options, finding the network directory, the node and the trust
file, the SDK client and signing session, and turning a `Rejected` into an exit code.

Each command module (`evidence`, `chain`, `members`, `governance`, `invoice`,
`contracts`, `generic`, and the operator verbs in `tidechain.ops`) has a
`register(commands)` that adds its verbs with `add` and `group`; `cli/main.py` builds
the parser from those. No command module imports another's private helpers, and
nothing here imports the node.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tidechain.cli import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_REJECTED,
    EXIT_UNREACHABLE,
    EXIT_VERIFICATION_FAILED,
)
from tidechain.client.files import (
    DEFAULT_LEGAL_NAME,
    DEFAULT_ORG,
    DEFAULT_USCC,
    TRUST_FILE,
    load_genesis,
    network_api_ca,
    node_urls,
    read_key,
    resolve_network_dir,
)
from tidechain.client.txbuilder import Progress, hash_file
from tidechain.core.crypto import SigningKey
from tidechain.core.errors import ConfigError, ProofError, Rejected
from tidechain.core.timefmt import iso_utc

if TYPE_CHECKING:
    from tidechain.client.sdk import Client
    from tidechain.client.session import Outcome, Session
    from tidechain.ledger.runtime import Registry

NODE_ENV = "TIDE_NODE"
PROGRESS_MIN_BYTES = 8 * 1024 * 1024
"""Files larger than this show a progress line while being hashed (~50 ms of work)."""


class Output:
    """Where results go: human lines, or one JSON document with --json."""

    def __init__(self, as_json: bool, out: TextIO | None = None,
                 err: TextIO | None = None) -> None:
        self.as_json = as_json
        # The streams as they are now, not as they were when this module was imported
        # (a caller, or a test's capture, may have replaced them since).
        self.out = sys.stdout if out is None else out
        self.err = sys.stderr if err is None else err

    def result(self, data: Any, lines: Sequence[str]) -> None:
        if self.as_json:
            json.dump(data, self.out, indent=2, sort_keys=True)
            self.out.write("\n")
        else:
            for line in lines:
                self.out.write(line + "\n")

    def error(self, code: str, reason: str) -> None:
        """A rejection: `error: <code>: <reason>` on stderr (and as JSON with --json)."""
        self._json_error(code, reason)
        self.err.write(f"error: {code}: {reason}\n")

    def failed(self, code: str, reason: str) -> None:
        """A verification that failed: `verification FAILED: <reason>`."""
        self._json_error(code, reason)
        self.err.write(f"verification FAILED: {reason}\n")

    def _json_error(self, code: str, reason: str) -> None:
        if self.as_json:
            json.dump({"error": code, "reason": reason, "ok": False}, self.out, sort_keys=True)
            self.out.write("\n")


Command = Callable[[argparse.Namespace, Output], int]
Registrar = Callable[[Any], None]
"""register(commands): add a module's verbs to the top-level command table."""


# --- the parser ------------------------------------------------------------------------------


def common_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    # On subcommands the defaults are suppressed, so `tide --json status` and
    # `tide status --json` both work and neither overwrites the other.
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument("--net", metavar="DIR", default=default,
                        help="network directory (default: $TIDE_NET, else ./net)")
    parser.add_argument("--node", metavar="URL", default=default,
                        help=f"node API URL (default: ${NODE_ENV}, else the first node "
                             "in network.toml)")
    parser.add_argument("--app", metavar="MODULE", dest="app_module", action="append",
                        default=default,
                        help=f"serve an extra application module too (repeatable; "
                             f"default: ${APPS_ENV}, comma-separated)")
    parser.add_argument("--as", metavar="KEYFILE", dest="read_as", default=default,
                        help=f"the member key that signs reads (default: ${KEY_ENV}, else "
                             "the command's own key, else NET/client.key or NET/admin.key)")
    parser.add_argument("--cert", metavar="PEM", dest="tls_cert", default=default,
                        help="a member certificate to present over mutual TLS (with "
                             "--cert-key; for a node serving HTTPS)")
    parser.add_argument("--cert-key", metavar="PEM", dest="tls_key", default=default,
                        help="the private key (PEM) of --cert")
    parser.add_argument("--cacert", metavar="PEM", dest="tls_ca", default=default,
                        help="the CA that issued the node's HTTPS certificate")
    parser.add_argument("--json", action="store_true",
                        default=argparse.SUPPRESS if suppress else False,
                        help="machine-readable output")


def add(subparsers: Any, name: str, command: Command, help_text: str,
        **parser_options: Any) -> argparse.ArgumentParser:
    """A verb under `subparsers` that runs `command`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=help_text, **parser_options)
    common_options(parser, suppress=True)
    parser.set_defaults(command=command)
    return parser


def group(subparsers: Any, name: str, help_text: str) -> Any:
    """A group of verbs (`tide NAME VERB ...`): the table to `add` them to."""
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def trust_option(parser: argparse.ArgumentParser, required: bool = False) -> None:
    help_text = "trust file with the validators' keys" + (
        "" if required else f" (default: {TRUST_FILE} in the network directory)")
    parser.add_argument("--trust", metavar="TRUST", required=required, help=help_text)


def org_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--org", required=required, metavar="ID",
                        default=None if required else DEFAULT_ORG,
                        help="org id: lower-case letters, digits, inner hyphens"
                             + ("" if required else f" (default: {DEFAULT_ORG})"))
    parser.add_argument("--legal-name", required=required, metavar="NAME",
                        default=None if required else DEFAULT_LEGAL_NAME,
                        help="the organisation's registered legal name")
    parser.add_argument("--uscc", required=required, metavar="CODE",
                        default=None if required else DEFAULT_USCC,
                        help="unified social credit code (GB 32100-2015)")


def admin_key_option(parser: argparse.ArgumentParser, whose: str = "the organisation") -> None:
    parser.add_argument("--admin-key", metavar="FILE",
                        help=f"an admin key of {whose} (default: NET/admin.key)")


# --- the network, the node, the trust file, keys --------------------------------------------


def network_dir(args: argparse.Namespace) -> Path:
    return resolve_network_dir(args.net)


def node_url(args: argparse.Namespace) -> str:
    if args.node:
        return str(args.node)
    from_env = os.environ.get(NODE_ENV)
    if from_env:
        return from_env
    net = network_dir(args)
    try:
        urls = node_urls(net)
    except ConfigError as exc:
        raise ConfigError(f"no node to ask: pass --node URL, set {NODE_ENV}, or point --net "
                          f"at a network directory ({exc.reason})") from exc
    if not urls:
        raise ConfigError(f"{net}/network.toml lists no node: pass --node URL")
    return urls[0]


def trust_path(args: argparse.Namespace) -> Path | None:
    """--trust FILE, else the network directory's trust.txt if there is one."""
    explicit: str | None = getattr(args, "trust", None)
    if explicit:
        return Path(explicit)
    default = network_dir(args) / TRUST_FILE
    return default if default.is_file() else None


KEY_ENV = "TIDE_KEY"


def client(args: argparse.Namespace, *, need_trust: bool = False,
           reads_as: Path | None = None) -> Client:
    """The SDK client of the node; `need_trust` for commands that verify what they get
    (every write: its receipt). Its reads are signed by `reader_key` (docs/access.md), or
    made over mutual TLS with --cert/--cert-key."""
    from tidechain.client.sdk import Client  # the HTTP client only for commands that need it

    path = trust_path(args)
    if need_trust and path is None:
        raise ConfigError(f"no trust file: pass --trust FILE or --net DIR (with {TRUST_FILE})")
    trust = path.read_bytes() if path is not None else None
    cert, cert_key, ca = (getattr(args, name, None) for name in ("tls_cert", "tls_key", "tls_ca"))
    if bool(cert) != bool(cert_key):
        raise ConfigError("--cert and --cert-key go together")
    certificate = (Path(cert), Path(cert_key)) if cert and cert_key else None
    return Client(node_url(args), trust=trust, chain_id=known_chain_id(args),
                  key=None if certificate else reader_key(args, reads_as),
                  certificate=certificate,
                  ca=Path(ca) if ca else network_api_ca(network_dir(args)))


def admin_client(args: argparse.Namespace, *, need_trust: bool = False) -> Client:
    """The client of a command about membership or governance, whose reads an admin
    makes: they default to NET/admin.key."""
    return client(args, need_trust=need_trust, reads_as=network_dir(args) / "admin.key")


def reader_key(args: argparse.Namespace, preferred: Path | None = None) -> SigningKey | None:
    """The member key that signs a command's reads: --as, else $TIDE_KEY, else the
    command's own key file (--key, --admin-key), else `preferred`, else the network
    directory's client.key or admin.key; None (anonymous) if there is none."""
    if getattr(args, "anonymous", False):
        return None
    explicit = getattr(args, "read_as", None) or os.environ.get(KEY_ENV)
    if explicit:
        return key_file(explicit)
    own = [getattr(args, name, None) for name in ("key", "admin_key")]
    candidates = [Path(p) for p in own if isinstance(p, str) and Path(p).is_file()]
    if preferred is not None:
        candidates.append(preferred)
    try:
        net = network_dir(args)
        candidates += [net / "client.key", net / "admin.key"]
    except ConfigError:
        pass
    for path in candidates:
        if path.is_file():
            return key_file(path)
    return None


def known_chain_id(args: argparse.Namespace) -> bytes | None:
    """The chain id from the network directory's genesis, when there is one: a write
    is then one round trip (no status request first)."""
    path = network_dir(args) / "genesis.cbor"
    if not path.is_file():
        return None
    return load_genesis(network_dir(args)).chain_id


def session(sdk: Client, key: SigningKey, registry: Registry | None = None) -> Session:
    """The one way a command signs and sends a transaction (client/session.py)."""
    from tidechain.client.session import Session

    return Session(sdk, key, registry=registry)


APPS_ENV = "TIDE_APPS"


def app_modules(args: argparse.Namespace) -> list[str]:
    """Extra application modules: `--app MODULE` (repeatable), else `$TIDE_APPS`."""
    given = getattr(args, "app_module", None)
    if given:
        return list(given)
    return [m.strip() for m in os.environ.get(APPS_ENV, "").split(",") if m.strip()]


def key_file(path: str | Path) -> SigningKey:
    return read_key(Path(path)).key


def admin_key(args: argparse.Namespace) -> SigningKey:
    """--admin-key FILE, else NET/admin.key."""
    return key_file(args.admin_key if args.admin_key else network_dir(args) / "admin.key")


def now_ms() -> int:
    return int(time.time() * 1000)


# --- printing ---------------------------------------------------------------------------------


def fields(data: dict[str, Any], indent: str = "  ") -> list[str]:
    """A JSON object as aligned `key  value` lines (nested objects indented)."""
    width = max((len(k) for k in data), default=0)
    lines = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            lines.append(f"{indent}{key}:")
            lines.extend(fields(value, indent + "  "))
        elif isinstance(value, list):
            shown = ", ".join(json.dumps(v) if isinstance(v, dict) else str(v) for v in value)
            lines.append(f"{indent}{key.ljust(width)}  [{shown}]")
        elif key.endswith("time_ms") and isinstance(value, int):
            lines.append(f"{indent}{key.ljust(width)}  {value} ({iso_utc(value)})")
        else:
            lines.append(f"{indent}{key.ljust(width)}  {value}")
    return lines


def committed_line(outcome: Outcome, what: str) -> str:
    """`WHAT: committed at log index N (event, ...), receipt verified`."""
    events = ", ".join(outcome.event_types())
    return (f"{what}: committed at log index {outcome.log_index} ({events}); receipt "
            f"verified ({', '.join(outcome.signers)})")


def progress_line(path: Path, err: TextIO) -> Progress | None:
    """A progress line on `err` while hashing files over PROGRESS_MIN_BYTES."""
    if path.stat().st_size <= PROGRESS_MIN_BYTES:
        return None
    shown = [-1]

    def progress(done: int, total: int) -> None:
        percent = done * 100 // max(total, 1)
        if percent == shown[0]:
            return
        shown[0] = percent
        err.write(f"\rhashing {path.name}: {percent:3d}% "
                  f"({done / 2**20:.1f} of {total / 2**20:.1f} MiB)")
        if done >= total:
            err.write("\n")
        err.flush()

    return progress


def hash_with_progress(path: Path, err: TextIO) -> bytes:
    """SHA-256 of a file, with a progress line on `err` for files over 8 MiB."""
    return hash_file(path, progress_line(path, err))


# --- running -----------------------------------------------------------------------------------


def exit_code(exc: Rejected) -> int:
    from tidechain.client.sdk import NodeUnreachable

    if isinstance(exc, NodeUnreachable):
        return EXIT_UNREACHABLE
    if isinstance(exc, ProofError):
        return EXIT_VERIFICATION_FAILED
    return EXIT_REJECTED


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse `argv` and run its command; a `Rejected` becomes `error: code: reason` and
    an exit code, never a traceback."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error (argparse exits with 2)
        return exc.code if isinstance(exc.code, int) else EXIT_REJECTED
    out = Output(bool(args.json))
    command: Command = args.command
    try:
        return command(args, out)
    except ProofError as exc:  # something the node sent did not verify
        out.failed(exc.code, exc.reason)
        return EXIT_VERIFICATION_FAILED
    except Rejected as exc:
        out.error(exc.code, exc.reason)
        return exit_code(exc)
    except BrokenPipeError:  # `tide ... | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # a file that cannot be read or written, a port in use
        out.error("io", str(exc))
        return EXIT_REJECTED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
