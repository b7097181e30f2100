r"""GS1's EPCIS 2.0 schemas, loaded once, checking captured documents and query bodies.

Where the files come from: GS1 publishes the EPCIS 2.0 JSON Schema, the query-body
schema and the XSDs (github.com/gs1/EPCIS, and the artefacts at ref.gs1.org) with no
open-source licence grant, so tidechain does NOT ship them. The operator downloads
them and names the folder in node.toml (`epcis_schemas = "/path"`); the node reads it
once at start with `EpcisSchemas.load(folder)`. The folder is laid out as GS1's repo
is (and as ../shared/vectors/epcis, which the tests use):

    schema/EPCIS-JSON-Schema.json        EPCISDocument, EPCISQueryDocument, bare events
    schema/query-schema.json             the `query` of `POST /queries`
    xsd/EPCglobal-epcis-2_0.xsd          EPCISDocument (XML) ...
    xsd/EPCglobal-epcis-query-2_0.xsd    ... and EPCISQueryDocument, with their imports
                                         (EPCglobal.xsd, the SBDH XSDs) beside them
    contexts/                            JSON-LD contexts (not read here)

A file missing, unreadable or not a schema is a `ConfigError` naming it.

Offline, always: XSD imports are served only from files inside `xsd/` by a resolver
(anything else fails the load), parsers run with `no_network=True`, and no `$ref` of the
JSON schemas leaves the file. JSON is checked with `jsonschema.Draft7Validator` and a
`FormatChecker` that really checks `date-time` and `uri` (the `format-nongpl` extra);
without those checkers a bad date would pass silently, so their absence fails the load.

A bad document raises `SchemaRejection(field, detail)` (a `Rejected`: HTTP 400) for
its FIRST error: errors are sorted by where they are in the document, then by the
schema's own order, so the same input always gets the same answer, whatever its key
order. `field` is a readable path (`epcisBody.eventList[0].action`; XML:
`EPCISBody/EventList/ObjectEvent[2]/action` and a line), `detail` says what was expected
and what was found. GS1's schema wraps many fields in `anyOf`/`if-then`; the raw
messages for those ("... is not valid under any of the given schemas") are replaced by
the alternatives that were expected, or by the most specific error inside. The wording
may change with the jsonschema or libxml2 version; which documents are accepted depends
only on the schema files and the format checkers.

Bounds (below, each with its reason): 16 MiB per document, JSON nesting and value
count, errors scanned and reported, schema file size. Past a bound: `TooLarge` (413).

Repairs made in memory to `schema/query-schema.json` (never on disk; gotcha 5 of the
test vectors' README; `repair_query_schema`):

1. In `definitions/EPCIS-Query/patternProperties`, the 75 names written with doubled
   backslashes (the JSON text `"^EQ_ILMD_[a-z][a-zA-Z0-9]*\\\\:\\\\w+$"` is the regex
   `^EQ_ILMD_[a-z][a-zA-Z0-9]*\\:\\w+$`, which wants a literal backslash before the
   colon) get single ones (`^EQ_ILMD_[a-z][a-zA-Z0-9]*\:\w+$`), so field-named
   parameters such as `EQ_ILMD_cbvmda:lotNumber`, `EXISTS_ERROR_DECLARATION_ns:f` and
   `EQ_ATTR_x_y` are accepted. Patterns without a backslash are unchanged.
2. `GE_errorDeclaration_Time` / `LT_errorDeclaration_Time` are renamed to the spelling
   of the standard and its OpenAPI document, `GE_errorDeclarationTime` /
   `LT_errorDeclarationTime` (the old spelling is then an unknown parameter).

3. The `EXISTS_*` parameters are typed `integer` with OpenAPI's `nullable: true`,
   which JSON Schema ignores, so `true` was refused, while the OpenAPI document types
   `EXISTS_errorDeclaration` as a boolean (and `{"EXISTS_errorDeclaration": true}` is
   how a client asks). Each also accepts a boolean.

`schema/query-schedule.json` is not used: its six patterns are Ruby/Oniguruma regexes
(`\g<element>`) that Python cannot compile, and with them removed it checks nothing
but "a string".
"""

from __future__ import annotations

import copy
import importlib
import itertools
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from xml.parsers import expat

from tidechain.contracts.trace.epcis_xml import MAX_XML_BYTES
from tidechain.core.errors import ConfigError, Rejected, TooLarge

__all__ = [
    "EPCIS_NS",
    "EPCIS_QUERY_NS",
    "MAX_DOCUMENT_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_JSON_NODES",
    "MAX_REPORTED_ERRORS",
    "MAX_SCANNED_ERRORS",
    "MAX_SCHEMA_FILE_BYTES",
    "REQUIRED_FILES",
    "EpcisSchemas",
    "SchemaRejection",
    "check_json_bounds",
    "load_json",
    "readable_path",
    "repair_query_schema",
    "root_kind",
]

# lxml and jsonschema ship no type information: their objects are `Any` here.
etree: Any = importlib.import_module("lxml.etree")
jsonschema: Any = importlib.import_module("jsonschema")

# --- limits ------------------------------------------------------------------------------
MAX_DOCUMENT_BYTES: Final = MAX_XML_BYTES
"""One capture document, JSON or XML: 16 MiB, the bound the XML event reader
(contracts/trace/epcis_xml.py) already sets. A day's events of a busy site fit; a
larger document should be split by its sender."""

MAX_JSON_DEPTH: Final = 64
"""Nesting of a JSON document: an event sits 3 deep in an EPCISDocument (5 in a query
answer) and its standard fields 4 more; the rest is room for user extensions, far from
Python's recursion limit, which jsonschema's recursive descent would otherwise meet."""

MAX_JSON_NODES: Final = 1_000_000
"""Values, objects and arrays in one JSON document: the same count the XML reader allows
for elements; bounds the validator's work on one hostile document."""

MAX_SCANNED_ERRORS: Final = 1_000
"""Schema errors pulled from the validator before sorting. A document with more has
its first (by position) chosen among these; jsonschema yields them in a fixed order,
so the choice is still deterministic, and a hostile document cannot make us collect
millions."""

MAX_REPORTED_ERRORS: Final = 100
"""Rejections `all_errors` returns: enough to fix a document in one round trip."""

MAX_SCHEMA_FILE_BYTES: Final = 4 * 1024 * 1024
"""One schema file read at load (GS1's largest, the JSON Schema, is 55 KB)."""

_MAX_SHOWN_CHARS: Final = 60
"""A rejected value quoted in a reason is cut here: reasons stay one line."""

_MAX_SHOWN_CHOICES: Final = 6
"""Enumerated values listed in a reason (the CBV bizStep list has 41)."""

# --- the folder ----------------------------------------------------------------------------
JSON_SCHEMA_FILE: Final = "schema/EPCIS-JSON-Schema.json"
QUERY_SCHEMA_FILE: Final = "schema/query-schema.json"
EPCIS_XSD_FILE: Final = "xsd/EPCglobal-epcis-2_0.xsd"
QUERY_XSD_FILE: Final = "xsd/EPCglobal-epcis-query-2_0.xsd"
REQUIRED_FILES: Final = (JSON_SCHEMA_FILE, QUERY_SCHEMA_FILE, EPCIS_XSD_FILE, QUERY_XSD_FILE)
"""Checked first, in this order; the XSDs' imports are checked as they are loaded."""

EPCIS_NS: Final = "urn:epcglobal:epcis:xsd:2"
EPCIS_QUERY_NS: Final = "urn:epcglobal:epcis-query:xsd:2"
_XML_KINDS: Final = {f"{{{EPCIS_NS}}}EPCISDocument": "EPCISDocument",
                     f"{{{EPCIS_QUERY_NS}}}EPCISQueryDocument": "EPCISQueryDocument"}
"""Roots `validate_xml_document` accepts, by Clark name, with the kind it reports."""

_NEEDED_FORMATS: Final = ("date-time", "uri")
"""Formats GS1's schemas use that must really be checked (jsonschema skips a format it
has no checker for)."""

_ERROR_DECLARATION_SPELLING: Final = {"GE_errorDeclaration_Time": "GE_errorDeclarationTime",
                                      "LT_errorDeclaration_Time": "LT_errorDeclarationTime"}


class SchemaRejection(Rejected):
    """A document or query body that GS1's schema refuses. `field` is where
    (`epcisBody.eventList[0].action`, or an XML element path), `detail` what was
    expected and found; `line` is the XML line, when there is one. `reason` (what the
    HTTP answer carries, as for every `Rejected`) says all three."""

    code = "epcis_schema"

    def __init__(self, field: str, detail: str, *, line: int | None = None) -> None:
        where = field or "document"
        super().__init__(f"{where}: {detail}" + (f" (line {line})" if line else ""))
        self.field = field
        self.detail = detail
        self.line = line

    def __repr__(self) -> str:
        return f"SchemaRejection({self.field!r}, {self.detail!r}, line={self.line})"


# --- JSON: bounds and parsing --------------------------------------------------------------


def load_json(data: bytes) -> object:
    """Parse one JSON document within the bounds above. `NaN` and `Infinity` (not JSON)
    are refused; a repeated key keeps its last value, as most JSON readers do (one of
    GS1's own examples repeats `eventID`)."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise TooLarge(f"document larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError as exc:
        raise SchemaRejection("", f"not UTF-8 at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise SchemaRejection("", f"not JSON: {exc.msg}", line=exc.lineno) from None
    except RecursionError:
        raise TooLarge(f"document nested deeper than {MAX_JSON_DEPTH}") from None
    except ValueError as exc:  # an integer past the interpreter's digit limit
        raise SchemaRejection("", f"not JSON this node reads: {exc}") from None
    check_json_bounds(doc)
    return doc


def _refuse_constant(name: str) -> object:
    raise SchemaRejection("", f"{name} is not a JSON number")


def check_json_bounds(doc: object) -> None:
    """`TooLarge` when `doc` nests deeper than MAX_JSON_DEPTH or holds more than
    MAX_JSON_NODES values. Iterative: the check itself cannot exhaust the stack."""
    nodes = 0
    pending: list[tuple[object, int]] = [(doc, 1)]
    while pending:
        value, depth = pending.pop()
        nodes += 1
        if nodes > MAX_JSON_NODES:
            raise TooLarge(f"document holds more than {MAX_JSON_NODES} JSON values")
        if depth > MAX_JSON_DEPTH:
            raise TooLarge(f"document nested deeper than {MAX_JSON_DEPTH}")
        if isinstance(value, dict):
            pending.extend((child, depth + 1) for child in value.values())
        elif isinstance(value, list):
            pending.extend((child, depth + 1) for child in value)


# --- JSON: readable rejections from jsonschema errors ------------------------------------

_PLAIN_KEY = re.compile(r"[A-Za-z_@$][A-Za-z0-9_@$:\-]*")

PathStep = str | int


def readable_path(path: Iterable[PathStep]) -> str:
    """`("epcisBody", "eventList", 0, "action")` -> `epcisBody.eventList[0].action`. A key
    that is not a plain name (a URI, say) is written as a quoted index: `ilmd["http://x"]`."""
    text = ""
    for step in path:
        if isinstance(step, int):
            text += f"[{step}]"
        elif _PLAIN_KEY.fullmatch(step):
            text += ("." if text else "") + step
        else:
            text += f"[{json.dumps(step)}]"
    return text


@dataclass(frozen=True)
class _Diagnosis:
    location: tuple[PathStep, ...]  # where the error was found (an object, for a missing field)
    field: tuple[PathStep, ...]  # what the rejection names
    reason: str
    summarised: bool  # built from alternatives: a plain error at the same place reads better


def _shown(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"an array of {len(value)}"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _MAX_SHOWN_CHARS else text[:_MAX_SHOWN_CHARS] + "…"


_TYPE_NAMES: Final = {"string": "a string", "number": "a number", "integer": "an integer",
                      "object": "an object", "array": "an array", "boolean": "true or false",
                      "null": "null"}

_FORMAT_NAMES: Final = {"uri": "an absolute URI (scheme:...)",
                        "date-time": "an RFC 3339 date-time (2005-04-03T20:33:31.116-06:00)"}


def _choices(values: list[Any]) -> str:
    return "one of " + _names([json.dumps(v, ensure_ascii=False) for v in values])


def _names(names: list[str]) -> str:
    more = len(names) - _MAX_SHOWN_CHOICES
    return ", ".join(names[:_MAX_SHOWN_CHOICES]) + (f" (and {more} more)" if more > 0 else "")


def _expected(error: Any) -> str:
    """What the failed keyword wanted, in words (without the 'got' part)."""
    keyword, wanted = error.validator, error.validator_value
    if keyword == "type":
        kinds: list[str] = wanted if isinstance(wanted, list) else [wanted]
        return " or ".join(_TYPE_NAMES.get(k) or k for k in kinds)
    if keyword == "enum":
        return _choices(list(wanted))
    if keyword == "const":
        return json.dumps(wanted, ensure_ascii=False)
    if keyword == "format":
        return _FORMAT_NAMES.get(wanted, f"a valid {wanted}")
    if keyword == "pattern":
        return f"text matching {wanted}"
    if keyword == "required":
        return f"a field {_missing_property(error)}"
    if keyword in ("minItems", "maxItems"):
        return f"{'at least' if keyword == 'minItems' else 'at most'} {wanted} item(s)"
    if keyword in ("minLength", "maxLength"):
        return f"{'at least' if keyword == 'minLength' else 'at most'} {wanted} character(s)"
    if keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"a number with {keyword} {wanted}"
    if keyword == "uniqueItems":
        return "no repeated items"
    return f"something else ({error.message})"


def _missing_property(error: Any) -> str:
    """The name a `required` error is about. jsonschema raises one error per missing
    name, in the order the schema lists them, and says the name only in its message."""
    missing = [name for name in error.validator_value if name not in error.instance]
    for name in missing:
        if error.message.startswith(repr(name)):
            return str(name)
    return str(missing[0]) if missing else "?"


def _unexpected_properties(error: Any) -> list[str]:
    schema = error.schema
    patterns = list(schema.get("patternProperties", {}))
    return sorted(key for key in error.instance
                  if key not in schema.get("properties", {})
                  and not any(re.search(pattern, key) for pattern in patterns))


def _names_a_property(error: Any) -> bool:
    """Under `propertyNames` the instance is a key of the object at `error.path`."""
    return "propertyNames" in error.absolute_schema_path


def _diagnose(error: Any) -> _Diagnosis:
    if error.validator in ("anyOf", "oneOf") and error.context:
        return _diagnose_alternatives(error)
    location = tuple(error.absolute_path)
    got = f", got {_shown(error.instance)}"
    if _names_a_property(error):
        return _Diagnosis(location, (*location, error.instance),
                          f"a field name here must be {_expected(error)}, got "
                          f"{_shown(error.instance)}", False)
    if error.validator == "required":
        missing = _missing_property(error)
        return _Diagnosis(location, (*location, missing), "this required field is missing", False)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        extra = _unexpected_properties(error) or ["?"]
        allowed = _names(list(error.schema.get("properties", {})))
        return _Diagnosis(location, (*location, extra[0]),
                          f"not a field allowed here (allowed: {allowed or 'none'})", False)
    return _Diagnosis(location, location, f"expected {_expected(error)}{got}", False)


def _diagnose_alternatives(error: Any) -> _Diagnosis:
    """An `anyOf`/`oneOf` that no alternative satisfied. When every alternative failed at
    one and the same place with plain keywords, say what each wanted ("a URI or one of
    ..."); otherwise some alternative got further into the value: follow its most
    specific error (deepest, then jsonschema's relevance order)."""
    inner = list(error.context)
    places = {tuple(sub.absolute_path) for sub in inner}
    flat = all(sub.validator not in ("anyOf", "oneOf", "allOf") for sub in inner)
    if len(places) != 1 or not flat:
        return _diagnose(min(inner, key=jsonschema.exceptions.relevance))
    location = places.pop()
    branches: dict[Any, list[Any]] = {}
    for sub in inner:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    wanted = " or ".join(" and ".join(_expected(sub) for sub in subs)
                         for subs in branches.values())
    first = inner[0]
    if _names_a_property(first):
        return _Diagnosis(location, (*location, first.instance),
                          f"a field name here must be {wanted}, got {_shown(first.instance)}",
                          True)
    if all(sub.validator == "required" for sub in inner):
        needed = " or ".join(" with ".join(_missing_property(sub) for sub in subs)
                             for subs in branches.values())
        return _Diagnosis(location, (*location, _missing_property(first)),
                          f"missing: one of these is required here: {needed}", True)
    return _Diagnosis(location, location, f"expected {wanted}, got {_shown(first.instance)}", True)


def _step_key(step: PathStep) -> tuple[int, int, str]:
    return (0, step, "") if isinstance(step, int) else (1, 0, step)


def _order(pair: tuple[_Diagnosis, Any]) -> tuple[Any, ...]:
    diagnosis, error = pair
    return (tuple(_step_key(s) for s in diagnosis.location), diagnosis.summarised,
            tuple(_step_key(s) for s in error.absolute_schema_path),
            tuple(_step_key(s) for s in diagnosis.field))


def _rejections(errors: Iterable[Any], limit: int) -> list[SchemaRejection]:
    scanned = itertools.islice(errors, MAX_SCANNED_ERRORS)
    diagnosed = sorted(((_diagnose(error), error) for error in scanned), key=_order)
    found: dict[str, SchemaRejection] = {}
    for diagnosis, _ in diagnosed:
        name = readable_path(diagnosis.field)
        if name not in found:  # one rejection per field: the first reads best
            found[name] = SchemaRejection(name, diagnosis.reason)
            if len(found) == limit:
                break
    return list(found.values())


# --- the query schema's repair --------------------------------------------------------


def repair_query_schema(schema: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A repaired deep copy of GS1's query-schema.json, and one line per repair made
    (the module docstring lists what is repaired). A schema that needs none (a fixed
    future release) comes back unchanged with no repairs."""
    repaired = copy.deepcopy(dict(schema))
    query = repaired.get("definitions", {}).get("EPCIS-Query")
    if not isinstance(query, dict):
        raise ConfigError(f"{QUERY_SCHEMA_FILE}: no definitions/EPCIS-Query")
    repairs: list[str] = []
    patterns = query.get("patternProperties", {})
    fixed_patterns: dict[str, Any] = {}
    for pattern, sub_schema in patterns.items():
        fixed = pattern.replace("\\\\", "\\")
        if fixed != pattern:
            repairs.append(f"patternProperties {pattern} -> {fixed}")
        fixed_patterns[fixed] = sub_schema
    if patterns:
        query["patternProperties"] = fixed_patterns
    properties = query.get("properties", {})
    for table in (properties, query.get("patternProperties", {})):
        for name, sub_schema in table.items():
            if name.lstrip("^").startswith("EXISTS_") and isinstance(sub_schema, dict) \
                    and sub_schema.get("type") == "integer":
                table[name] = {"anyOf": [sub_schema, {"type": "boolean"}]}
                repairs.append(f"{name}: a boolean is accepted too")
    for wrong, right in _ERROR_DECLARATION_SPELLING.items():
        if wrong in properties and right not in properties:
            properties[right] = properties.pop(wrong)
            repairs.append(f"properties {wrong} -> {right}")
    return repaired, tuple(repairs)


# --- XML -------------------------------------------------------------------------------


class _RootReached(Exception):
    """Stops the prolog check at the root element: no DOCTYPE can follow it."""


def _check_prolog(data: bytes) -> None:
    """Refuse a DOCTYPE with an internal subset or an external DTD, and any entity
    declaration, before lxml sees the bytes. A bare `<!DOCTYPE name>` (GS1's own
    examples carry one) declares nothing and is allowed. Expat reports exactly this
    (`has_internal_subset`), never fetches anything, and stops at the root."""
    parser = expat.ParserCreate()

    def doctype(name: str, system_id: str | None, public_id: str | None,
                has_internal_subset: int) -> None:
        if has_internal_subset:
            raise SchemaRejection("DOCTYPE", "a DTD internal subset is not accepted: its "
                                  "entity declarations could expand or fetch",
                                  line=parser.CurrentLineNumber)
        if system_id or public_id:
            raise SchemaRejection("DOCTYPE", f"an external DTD ({system_id or public_id!s}) "
                                  "is not accepted and is not fetched",
                                  line=parser.CurrentLineNumber)

    def entity(name: str, *_: object) -> None:
        raise SchemaRejection("DOCTYPE", f"entity declaration {name!r} is not accepted",
                              line=parser.CurrentLineNumber)

    def root(name: str, attributes: object) -> None:
        raise _RootReached

    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    parser.StartElementHandler = root
    try:
        parser.Parse(data, True)
    except _RootReached:
        return
    except expat.ExpatError as exc:
        raise SchemaRejection("", f"not well-formed XML: {expat.ErrorString(exc.code)}",
                              line=exc.lineno) from None
    raise SchemaRejection("", "not well-formed XML: no root element")


class _NothingResolver(etree.Resolver):  # type: ignore[misc]
    """Documents never load anything: every external reference fails."""

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        return self.resolve_string("", context)


def _hardened_parser(resolver: Any) -> Any:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             dtd_validation=False, huge_tree=False, collect_ids=False)
    parser.resolvers.add(resolver)
    return parser


def _parse_xml(data: bytes) -> Any:
    """The tree of `data`, parsed hardened: size bound, prolog check, then lxml with no
    entity substitution, no DTD, no network, libxml2's default limits (`huge_tree`
    off: depth 256, 10 MB text nodes) and a resolver that serves nothing."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise TooLarge(f"document larger than {MAX_DOCUMENT_BYTES} bytes")
    _check_prolog(data)
    try:
        root = etree.fromstring(data, _hardened_parser(_NothingResolver()))
    except etree.XMLSyntaxError as exc:
        raise SchemaRejection("", f"not well-formed XML: {exc.msg}", line=exc.lineno) from None
    # Unreachable past the prolog check (an entity must be declared), kept as a second
    # wall: an unsubstituted reference would otherwise reach libxml2's validator.
    reference = next(root.iter(etree.Entity), None)
    if reference is not None:
        raise SchemaRejection("", f"entity reference {reference.text} is not accepted",
                              line=reference.sourceline)
    return root.getroottree()


def _kind_of(tree: Any) -> str:
    tag = str(tree.getroot().tag)
    return _XML_KINDS.get(tag, tag)


def root_kind(data: bytes) -> str:
    """`EPCISDocument` or `EPCISQueryDocument` for EPCIS 2.0 roots, else the root's
    Clark name (`{urn:epcglobal:epcis:xsd:2}EPCISCaptureJob`). Parsed hardened."""
    return _kind_of(_parse_xml(data))


def _element_path(path: str | None) -> str:
    """lxml's `/epcis:EPCISDocument/EPCISBody/EventList/ObjectEvent[2]/action` without
    the root step, which the kind already names."""
    steps = (path or "").strip("/").split("/")
    return "/".join(steps[1:])


class _FolderResolver(etree.Resolver):  # type: ignore[misc]
    """Serves XSD imports from files directly in `folder`; records anything else, which
    is refused (the load then fails with ConfigError naming it)."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        self.refused: list[str] = []

    def resolve(self, system_url: str, public_id: str, context: Any) -> Any:
        local = Path(system_url.removeprefix("file://"))
        # The directory is resolved, not the file: a file symlinked in by the operator
        # is theirs to choose; a path that climbs out of xsd/ is not served.
        inside = local.is_absolute() and local.parent.resolve() == self.folder
        candidate = self.folder / local.name
        if inside and candidate.is_file():
            return self.resolve_filename(str(candidate), context)
        self.refused.append(system_url)
        return self.resolve_string("", context)


def _load_xsd(folder: Path, name: str) -> Any:
    xsd_folder = (folder / "xsd").resolve()
    resolver = _FolderResolver(xsd_folder)
    try:
        tree = etree.parse(str(folder / name), _hardened_parser(resolver))
        schema = etree.XMLSchema(tree)
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        missing = ", ".join(resolver.refused)
        raise ConfigError(f"EPCIS schemas: {name} does not load"
                          + (f": missing or outside xsd/: {missing}" if missing else f": {exc}")
                          ) from None
    if resolver.refused:
        raise ConfigError(f"EPCIS schemas: {name} imports {', '.join(resolver.refused)}, "
                          "which is missing or outside xsd/")
    return schema


@dataclass(frozen=True)
class _Xsd:
    """An XMLSchema and the lock its use needs: lxml keeps the error log of the last
    validation on the schema object, so two threads validating at once would mix logs."""

    schema: Any
    lock: threading.Lock = field(default_factory=threading.Lock)

    def first_error(self, tree: Any) -> SchemaRejection | None:
        with self.lock:
            try:
                if self.schema.validate(tree):
                    return None
            except etree.XMLSchemaValidateError as exc:  # libxml2 gave up on this tree
                return SchemaRejection("", f"the XSD validator could not check it: {exc}")
            entry = self.schema.error_log[0]
        return SchemaRejection(_element_path(entry.path), entry.message, line=entry.line)


# --- the loaded schemas ------------------------------------------------------------------


def _read_json(folder: Path, name: str) -> Any:
    path = folder / name
    try:
        with path.open("rb") as file:
            data = file.read(MAX_SCHEMA_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"EPCIS schemas: cannot read {name} in {folder}: "
                          f"{exc.strerror}") from None
    if len(data) > MAX_SCHEMA_FILE_BYTES:
        raise ConfigError(f"EPCIS schemas: {name} is larger than {MAX_SCHEMA_FILE_BYTES} bytes")
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"EPCIS schemas: {name} is not JSON: {exc}") from None


def _json_validator(schema: Any, name: str) -> Any:
    validator_class = jsonschema.Draft7Validator
    try:
        validator_class.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise ConfigError(f"EPCIS schemas: {name} is not a Draft 7 schema: "
                          f"{exc.message}") from None
    checker = jsonschema.FormatChecker()
    unchecked = [f for f in _NEEDED_FORMATS if f not in checker.checkers]
    if unchecked:
        raise ConfigError(f"jsonschema cannot check the formats {unchecked}: install "
                          "jsonschema[format-nongpl]")
    return validator_class(schema, format_checker=checker)


@dataclass(frozen=True)
class EpcisSchemas:
    """GS1's EPCIS 2.0 schemas from the operator's folder: load once, share freely."""

    folder: Path
    query_schema_repairs: tuple[str, ...]
    """What `repair_query_schema` changed in query-schema.json, one line each."""
    _document: Any
    _query_body: Any
    _epcis_xsd: _Xsd
    _query_xsd: _Xsd

    @classmethod
    def load(cls, folder: Path) -> EpcisSchemas:
        """Read and compile every schema in `folder`; ConfigError naming the first file
        that is missing or unusable."""
        if not folder.is_dir():
            raise ConfigError(f"EPCIS schemas: {folder} is not a directory (node.toml "
                              "epcis_schemas)")
        for name in REQUIRED_FILES:
            if not (folder / name).is_file():
                raise ConfigError(f"EPCIS schemas: {name} is missing from {folder}")
        query_schema, repairs = repair_query_schema(_read_json(folder, QUERY_SCHEMA_FILE))
        return cls(
            folder=folder,
            query_schema_repairs=repairs,
            _document=_json_validator(_read_json(folder, JSON_SCHEMA_FILE), JSON_SCHEMA_FILE),
            _query_body=_json_validator(query_schema, QUERY_SCHEMA_FILE),
            _epcis_xsd=_Xsd(_load_xsd(folder, EPCIS_XSD_FILE)),
            _query_xsd=_Xsd(_load_xsd(folder, QUERY_XSD_FILE)),
        )

    # --- JSON ----------------------------------------------------------------------------

    def all_errors(self, doc: object, *, kind: str = "EPCISDocument",
                   limit: int = MAX_REPORTED_ERRORS) -> list[SchemaRejection]:
        """Every rejection of `doc` as a JSON `kind` (EPCISDocument or
        EPCISQueryDocument), first first, one per field, at most `limit`."""
        check_json_bounds(doc)
        if not isinstance(doc, dict):
            return [SchemaRejection("", f"expected a JSON object (an {kind}), got {_shown(doc)}")]
        if doc.get("type") != kind:
            got = _shown(doc.get("type"))
            return [SchemaRejection("type", f"expected {_shown(kind)}, got {got}")]
        return _rejections(self._document.iter_errors(doc), limit)

    def validate_json_document(self, doc: object) -> None:
        """SchemaRejection for the first error of a JSON(-LD) EPCISDocument."""
        _raise_first(self.all_errors(doc, kind="EPCISDocument", limit=1))

    def validate_query_document(self, doc: object) -> None:
        """SchemaRejection for the first error of a JSON EPCISQueryDocument (an answer)."""
        _raise_first(self.all_errors(doc, kind="EPCISQueryDocument", limit=1))

    def query_body_errors(self, body: object, *,
                          limit: int = MAX_REPORTED_ERRORS) -> list[SchemaRejection]:
        """Every rejection of a query body (`query` of POST /queries), repaired schema."""
        check_json_bounds(body)
        return _rejections(self._query_body.iter_errors(body), limit)

    def validate_query_body(self, body: object) -> None:
        """SchemaRejection for the first error of a query body, field = the parameter."""
        _raise_first(self.query_body_errors(body, limit=1))

    # --- XML -----------------------------------------------------------------------------

    def validate_xml_document(self, data: bytes) -> str:
        """Check an XML EPCISDocument (against EPCglobal-epcis-2_0.xsd) or
        EPCISQueryDocument (against EPCglobal-epcis-query-2_0.xsd) and return which it
        is; which kinds a route takes is the route's business. SchemaRejection naming
        the element path and line; TooLarge past MAX_DOCUMENT_BYTES."""
        tree = _parse_xml(data)
        kind = _kind_of(tree)
        if kind == "EPCISDocument":
            _raise_first_of(self._epcis_xsd.first_error(tree))
        elif kind == "EPCISQueryDocument":
            _raise_first_of(self._query_xsd.first_error(tree))
        else:
            raise SchemaRejection("", f"root element {kind} is not an EPCIS 2.0 EPCISDocument "
                                  "or EPCISQueryDocument", line=tree.getroot().sourceline)
        return kind

    def validate_xml_query_document(self, data: bytes) -> None:
        """Like `validate_xml_document`, for a query answer: the root must be an
        EPCISQueryDocument."""
        kind = self.validate_xml_document(data)
        if kind != "EPCISQueryDocument":
            raise SchemaRejection("", f"expected an EPCISQueryDocument, got {kind}")


def _raise_first(rejections: list[SchemaRejection]) -> None:
    if rejections:
        raise rejections[0]


def _raise_first_of(rejection: SchemaRejection | None) -> None:
    if rejection is not None:
        raise rejection

