"""`tide call APP.METHOD --arg NAME=VALUE ...` and `tide query APP NAME --param
NAME=VALUE ... [--all]`: every application's methods and queries, with no command
written for any of them.

What each takes comes from the application's own declarations in the registry
(`MethodSpec.args`, `Query.params`: msgspec Structs), so a new application gets both
verbs, and their help, from its descriptor alone (ADR 0013). A value is read from text
by its declared type: bytes as hex, integers, booleans (true/false), text as is, and
JSON for maps, lists and nested records (bytes inside them as hex too). The call is
signed with the client key (--key), sent with the session (one round trip), and its
receipt verified before it is printed or written (-o FILE).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec.inspect as mi

from tidechain.cli import EXIT_OK
from tidechain.cli.base import (
    Output,
    add,
    app_modules,
    client,
    committed_line,
    network_dir,
    session,
    trust_option,
)
from tidechain.client.files import client_signer
from tidechain.core.errors import Rejected

if TYPE_CHECKING:
    from tidechain.ledger.application import Query
    from tidechain.ledger.runtime import MethodSpec, Registry

_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_PAGING = ("cursor", "limit")
"""The parameters every paged query takes besides its own (`PageRequest`)."""


def _bad(what: str, reason: str) -> Rejected:
    return Rejected(f"{what}: {reason}", code="bad_argument")


def registry(args: argparse.Namespace) -> Registry:
    """The built-in applications, and any extra ones named by `--app MODULE` or
    `$TIDE_APPS` (comma-separated), as the node serves them (node.toml
    `applications`, ADR 0013)."""
    from tidechain.contracts import default_registry  # members loads x509 on first use
    from tidechain.contracts.registry import load_applications

    return default_registry(load_applications(app_modules(args)))


# --- declared types --------------------------------------------------------------------------


def _unwrap(t: mi.Type) -> tuple[mi.Type, str]:
    """The type under its metadata, and the metadata's description."""
    description = ""
    while isinstance(t, mi.Metadata):
        description = str((t.extra_json_schema or {}).get("description", description))
        t = t.type
    return t, description


def _optional(t: mi.Type) -> tuple[mi.Type, bool]:
    """(the type without None, whether None is allowed)."""
    t, _ = _unwrap(t)
    if isinstance(t, mi.UnionType):
        others = [u for u in t.types if not isinstance(_unwrap(u)[0], mi.NoneType)]
        if len(others) < len(t.types):
            return (others[0] if len(others) == 1 else mi.UnionType(tuple(others))), True
    return t, False


def type_text(t: mi.Type) -> str:
    """How a declared type is written on the command line, for help and errors."""
    t, allows_none = _optional(t)
    t, _ = _unwrap(t)
    if isinstance(t, mi.BytesType):
        size = (f", {t.min_length} bytes" if t.min_length is not None
                and t.min_length == t.max_length else "")
        text = f"hex{size}"
    elif isinstance(t, mi.IntType):
        bounds = [f">= {t.ge}" if t.ge is not None else "", f"<= {t.le}" if t.le is not None
                  else ""]
        text = " ".join(["integer", *filter(None, bounds)])
    elif isinstance(t, mi.BoolType):
        text = "true|false"
    elif isinstance(t, mi.StrType):
        text = "text"
    elif isinstance(t, mi.LiteralType):
        text = "|".join(str(v) for v in t.values)
    elif isinstance(t, mi.UnionType):
        text = " or ".join(type_text(u) for u in t.types)
    elif isinstance(t, (mi.DictType, mi.StructType, mi.TypedDictType, mi.DataclassType)):
        text = "JSON object"
    elif isinstance(t, (mi.ListType, mi.VarTupleType, mi.TupleType, mi.SetType,
                        mi.FrozenSetType)):
        text = "JSON list"
    else:
        text = "JSON or text"
    return text + (" or null" if allows_none else "")


def _fields(struct: type[Any] | None) -> list[mi.Field]:
    if struct is None:
        return []
    info = mi.type_info(struct)
    assert isinstance(info, mi.StructType)
    return list(info.fields)


def _field_line(f: mi.Field, flag: str) -> str:
    _, description = _unwrap(f.type)
    if not description:  # an optional field's description is inside the union
        _, description = _unwrap(_optional(f.type)[0])
    need = "required" if f.required else "optional"
    line = f"    {flag} {f.encode_name}=<{type_text(f.type)}>  ({need})"
    return line + (f"  {description}" if description else "")


# --- text to typed values -----------------------------------------------------------------------


def parse_value(text: str, t: mi.Type, what: str) -> Any:
    """A command-line value as the declared type `t` reads it."""
    t, allows_none = _optional(t)
    if allows_none and text == "null":
        return None
    t, _ = _unwrap(t)
    if isinstance(t, mi.BytesType):
        return _hex(text, what)
    if isinstance(t, mi.IntType):
        try:
            return int(text, 10)
        except ValueError:
            raise _bad(what, f"expected an integer, got {text!r}") from None
    if isinstance(t, mi.BoolType):
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise _bad(what, f"expected true or false, got {text!r}")
    if isinstance(t, (mi.StrType, mi.LiteralType)):
        return text if not isinstance(t, mi.LiteralType) else _literal(text, t, what)
    if isinstance(t, mi.AnyType):
        try:
            return json.loads(text)
        except ValueError:
            return text
    if isinstance(t, mi.UnionType):
        for member in t.types:
            try:
                return parse_value(text, member, what)
            except Rejected:
                continue
        raise _bad(what, f"expected {type_text(t)}, got {text!r}")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise _bad(what, f"expected {type_text(t)} ({exc})") from None
    return from_json(value, t, what)


def _hex(text: Any, what: str) -> bytes:
    if not isinstance(text, str):
        raise _bad(what, f"expected hex bytes, got {text!r}")
    try:
        return bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise _bad(what, f"expected hex bytes, got {text[:40]!r}") from None


def _literal(text: str, t: mi.LiteralType, what: str) -> Any:
    for value in t.values:
        if str(value) == text:
            return value
    raise _bad(what, f"expected one of {', '.join(map(str, t.values))}, got {text!r}")


def from_json(value: Any, t: mi.Type, what: str) -> Any:
    """A JSON value with the hex strings at the declared bytes positions made bytes;
    everything else as it is (the method's Struct checks the rest)."""
    t, allows_none = _optional(t)
    if value is None and allows_none:
        return None
    t, _ = _unwrap(t)
    if isinstance(t, mi.BytesType):
        return _hex(value, what)
    if isinstance(t, (mi.ListType, mi.VarTupleType, mi.SetType, mi.FrozenSetType)) and \
            isinstance(value, list):
        return [from_json(v, t.item_type, f"{what}[{i}]") for i, v in enumerate(value)]
    if isinstance(t, mi.TupleType) and isinstance(value, list) and \
            len(value) == len(t.item_types):
        return [from_json(v, item, f"{what}[{i}]")
                for i, (v, item) in enumerate(zip(value, t.item_types, strict=True))]
    if isinstance(t, mi.DictType) and isinstance(value, dict):
        return {k: from_json(v, t.value_type, f"{what}.{k}") for k, v in value.items()}
    if isinstance(t, mi.StructType) and isinstance(value, dict):
        declared = {f.encode_name: f.type for f in t.fields}
        return {k: from_json(v, declared[k], f"{what}.{k}") if k in declared else v
                for k, v in value.items()}
    if isinstance(t, mi.UnionType):
        for member in t.types:
            try:
                return from_json(value, member, what)
            except Rejected:
                continue
    return value


def _pairs(pairs: Iterable[str], flag: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        name, equals, text = pair.partition("=")
        if not equals or not name:
            raise _bad(flag, f"expected NAME=VALUE, got {pair!r}")
        if name in found:
            raise _bad(flag, f"{name!r} given twice")
        found[name] = text
    return found


def call_args(target: str, spec: MethodSpec, pairs: Iterable[str]) -> dict[str, Any]:
    """The method's arguments from `--arg NAME=VALUE` pairs, each read by its declared
    type; an unknown or missing argument is refused, naming it."""
    given = _pairs(pairs, "--arg")
    declared = {f.encode_name: f for f in _fields(spec.args)}
    if spec.args is None:  # not declared: JSON where it parses, text otherwise
        return {name: parse_value(text, mi.AnyType(), f"--arg {name}")
                for name, text in given.items()}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise _bad(f"--arg {unknown[0]}", f"{target} takes no such argument (it takes: "
                   f"{', '.join(declared) or 'none'})")
    missing = [f for name, f in declared.items() if f.required and name not in given]
    if missing:
        raise _bad(f"--arg {missing[0].encode_name}",
                   f"{target} needs it (<{type_text(missing[0].type)}>)")
    return {name: parse_value(text, declared[name].type, f"--arg {name}")
            for name, text in given.items()}


# --- help -------------------------------------------------------------------------------------


def _split(target: str) -> tuple[str, str]:
    app, dot, method = target.partition(".")
    if not dot or not app or not method:
        raise _bad("APP.METHOD", f"expected e.g. evidence.deposit, got {target!r}")
    return app, method


def method_help(app: str, method: str, spec: MethodSpec) -> list[str]:
    roles = ", ".join(sorted(r.value for r in spec.roles))
    lines = [f"  {app}.{method}  (roles: {roles})  {spec.summary}"]
    if spec.args is None:
        return [*lines, "    (arguments not declared: --arg NAME=VALUE, JSON or text)"]
    fields = _fields(spec.args)
    return lines + ([_field_line(f, "--arg") for f in fields] or ["    (no arguments)"])


def call_help(reg: Registry, only: str | None) -> list[str]:
    """Every method of every application with its roles and arguments (or one)."""
    lines = []
    for name in reg.applications:
        contract = reg.newest(name)  # the version a client builds calls for
        assert contract is not None
        for method, spec in contract.methods.items():
            if only is None or only == f"{name}.{method}":
                lines += method_help(name, method, spec)
    if only is not None and not lines:
        raise _bad("APP.METHOD", f"no method {only!r} (see `tide call --help`)")
    return lines


def query_help(reg: Registry, only: tuple[str, str] | None) -> list[str]:
    """Every query of every application with who reads it and its parameters (or one)."""
    lines = []
    for name, app in reg.applications.items():
        for query_name, query in app.queries.items():
            if only is not None and only != (name, query_name):
                continue
            paged = ", paged: --all for every page" if query.paged else ""
            lines.append(f"  {name} {query_name}  (readers: {', '.join(query.readers())}"
                         f"{paged})  {query.summary}")
            lines += [_field_line(f, "--param") for f in _fields(query.params)]
            if query.paged:
                lines.append("    --param cursor=<text>  (optional)  the `next` of the "
                             "previous page")
                lines.append("    --param limit=<integer>  (optional)  items per page")
    if only is not None and not lines:
        raise _bad("APP NAME", f"no query {' '.join(only)!r} (see `tide query --help`)")
    return lines


# --- the verbs ----------------------------------------------------------------------------------


CALL_USAGE = ("tide call APP.METHOD [--arg NAME=VALUE ...] [--key FILE] [-o RECEIPT] "
              "[--no-wait]")
QUERY_USAGE = "tide query APP NAME [--param NAME=VALUE ...] [--all]"


def cmd_call(args: argparse.Namespace, out: Output) -> int:
    reg = registry(args)
    if args.help or args.target is None:
        text = [f"usage: {CALL_USAGE}", "", "methods (argument types as typed on the "
                "command line):", *call_help(reg, args.target)]
        out.out.write("\n".join(text) + "\n")
        return EXIT_OK
    app, method = _split(args.target)
    spec = reg.method(app, method)
    call = call_args(args.target, spec, args.arg or [])
    key = client_signer(network_dir(args), args.key).key
    with client(args, need_trust=not args.no_wait) as sdk:
        signing = session(sdk, key, reg)
        if args.no_wait:
            tx_id = signing.call(app, method, call, wait=False)
            out.result({"tx_id": tx_id.hex(), "status": "pending"},
                       [f"{args.target}: admitted as tx {tx_id.hex()} (not waited for)"])
            return EXIT_OK
        outcome = signing.call(app, method, call)
    data = outcome.to_json() | {"receipt_path": args.output}
    lines = [committed_line(outcome, args.target), f"  transaction  {outcome.tx_id.hex()}",
             f"  block        {outcome.height}"]
    if args.output:
        from tidechain.client.sdk import write_atomically

        write_atomically(Path(args.output), outcome.receipt)
        lines.append(f"  receipt      {args.output}")
    else:
        lines += ["", outcome.receipt.rstrip("\n")]
    out.result(data, lines)
    return EXIT_OK


def cmd_query(args: argparse.Namespace, out: Output) -> int:
    reg = registry(args)
    if args.help or args.app is None or args.name is None:
        only = (args.app, args.name) if args.app and args.name else None
        text = [f"usage: {QUERY_USAGE}", "", "queries:", *query_help(reg, only)]
        out.out.write("\n".join(text) + "\n")
        return EXIT_OK
    query = _query(reg, args.app, args.name)
    params: dict[str, Any] = dict(_pairs(args.param or [], "--param"))
    known = {f.encode_name for f in _fields(query.params)} | (
        set(_PAGING) if query.paged else set())
    unknown = sorted(set(params) - known)
    if unknown:
        raise _bad(f"--param {unknown[0]}", f"{args.app} {args.name} takes no such "
                   f"parameter (it takes: {', '.join(sorted(known)) or 'none'})")
    if args.all and not query.paged:
        raise _bad("--all", f"{args.app} {args.name} is not a paged list")
    with client(args) as sdk:
        if args.all:
            items, more = sdk.gather(args.app, args.name, **params)
            note = ("" if more is None else
                    f"; more after them: --param cursor={more}")
            out.result({"items": items, "next": more},
                       [*_item_lines(items), f"({len(items)} items{note})"])
            return EXIT_OK
        answer = sdk.query(args.app, args.name, **params)
    if query.paged:
        more = answer.get("next")
        lines = _item_lines(answer["items"])
        if more is not None:
            lines.append(f"(more: --param cursor={more}, or --all)")
        out.result(answer, lines)
    else:
        out.result(answer, [json.dumps(answer, indent=2, sort_keys=True)])
    return EXIT_OK


def _query(reg: Registry, app_name: str, name: str) -> Query:
    app = reg.applications.get(app_name)
    if app is None:
        raise Rejected(f"no application {app_name!r} (there are: "
                       f"{', '.join(reg.applications)})", code="unknown_contract")
    query = app.queries.get(name)
    if query is None:
        raise Rejected(f"{app_name} has no query {name!r} (it has: "
                       f"{', '.join(app.queries) or 'none'})", code="unknown_query")
    return query


def _item_lines(items: Sequence[Any]) -> list[str]:
    return [json.dumps(item, sort_keys=True) for item in items]


def _own_help(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-h", "--help", action="store_true",
                        help="list what can be called, with each argument's type")


def register(commands: Any) -> None:
    p = add(commands, "call", cmd_call,
            "call any application's method, arguments typed by its declaration "
            "(`tide call --help` lists them)", add_help=False, usage=CALL_USAGE)
    _own_help(p)
    p.add_argument("target", nargs="?", metavar="APP.METHOD")
    p.add_argument("--arg", action="append", metavar="NAME=VALUE",
                   help="an argument (repeatable): hex for bytes, JSON for maps and lists")
    p.add_argument("--key", metavar="KEYFILE", help="signing key (default: NET/client.key)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the verified receipt to FILE")
    p.add_argument("--no-wait", action="store_true",
                   help="return the transaction id once admitted; no receipt")
    trust_option(p)

    p = add(commands, "query", cmd_query,
            "run any application's query (`tide query --help` lists them)",
            add_help=False, usage=QUERY_USAGE)
    _own_help(p)
    p.add_argument("app", nargs="?", metavar="APP")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="a parameter (repeatable)")
    p.add_argument("--all", action="store_true", help="every page of a paged list")


__all__ = ["call_args", "from_json", "parse_value", "register", "type_text"]
