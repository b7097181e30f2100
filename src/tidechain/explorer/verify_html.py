"""The receipt verifier as one self-contained HTML file (`tide explorer verify-html`).

`static/verify/verify.html` loads its ES modules and stylesheet from the node that serves
it. A court or an auditor should not need that node, or any server: this module inlines
the page's stylesheet and every module it imports (ours and the vendored @noble code)
into one file that opens from `file://` with no network at all.

Inlining is a small, strict rewrite, not a bundler: each module becomes a function whose
imports are read from the modules before it and whose exports it returns. Only the
import and export forms our modules and the vendored files use are understood; anything
else (a default export, `export *`, `import.meta`, an import after the first statement)
raises `InlineError`, so a new form fails the build instead of producing a broken page.

The page carries a Content-Security-Policy that allows nothing but its own inline script
and style, named by their SHA-256: it can load, send or embed nothing. The output is a
pure function of the source files (no time, no order of a directory listing), so anyone
can rebuild it and compare its SHA-256 with the one published in docs/verify-html.md.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
from dataclasses import dataclass

from tidechain.explorer import STATIC_DIR

__all__ = [
    "ENTRY_MODULE",
    "PAGE",
    "InlineError",
    "build_verify_html",
    "inlined_modules",
    "verify_html_sha256",
]

PAGE = "verify/verify.html"
ENTRY_MODULE = "verify/verify-page.js"
STYLESHEET = "verify/verify.css"
MAX_MODULES = 64
"""Modules one page may inline: ours are about fifteen, the vendored ones five."""

_STYLE_LINK = '<link rel="stylesheet" href="verify.css">'
_SCRIPT_TAG = '<script type="module" src="verify-page.js"></script>'
_CSP_ANCHOR = '<meta charset="utf-8">\n'

_IDENT = r"[A-Za-z_$][\w$]*"
_PROLOGUE_SKIP = re.compile(r"(?:\s+|//[^\n]*|/\*.*?\*/)*", re.S)
_IMPORT = re.compile(
    r"import\s*(?:\{(?P<names>[^}]*)\}|\*\s*as\s+(?P<ns>" + _IDENT + r"))\s*"
    r"from\s*(?P<q>[\"'])(?P<path>[^\"']+)(?P=q)\s*;?")
_EXPORT_DECLARATION = re.compile(
    r"^export\s+(?P<kind>async\s+function\*?|function\*?|const|let|var|class)\s+"
    r"(?P<name>" + _IDENT + ")", re.M)
_EXPORT_LIST = re.compile(r"^export\s*\{(?P<names>[^}]*)\}\s*;?[ \t]*$", re.M)
_ANY_EXPORT = re.compile(r"^export\b", re.M)
_LATE_IMPORT = re.compile(r"^import\b", re.M)
_NAME_PAIR = re.compile(r"^(?P<name>" + _IDENT + r")(?:\s+as\s+(?P<alias>" + _IDENT + r"))?$")
_HTML_HAZARDS = ("</script", "<!--", "</style")


class InlineError(Exception):
    """A source file uses a form the inliner does not understand; fix the source."""


@dataclass(frozen=True)
class _Module:
    path: str  # relative to STATIC_DIR, with '/'
    imports: tuple[tuple[str, str], ...]  # (statement's replacement, imported path)
    body: str
    exports: tuple[tuple[str, str], ...]  # (exported name, local name)


def _read(path: str) -> str:
    return (STATIC_DIR / path).read_text(encoding="utf-8")


def _name_pairs(text: str, path: str) -> list[tuple[str, str]]:
    """`a, b as c` as [(a, a), (b, c)]: (name on one side, name on the other)."""
    pairs = []
    for part in text.split(","):
        item = " ".join(part.split())
        if not item:
            continue
        match = _NAME_PAIR.fullmatch(item)
        if match is None:
            raise InlineError(f"{path}: cannot read the import/export list item {item!r}")
        pairs.append((match["name"], match["alias"] or match["name"]))
    return pairs


def _split_imports(source: str, path: str) -> tuple[list[tuple[str, str]], str]:
    """The import statements at the top of `source` and the module without them (its
    leading comments kept)."""
    imports: list[tuple[str, str]] = []
    comments: list[str] = []
    position = 0
    while True:
        skipped = _PROLOGUE_SKIP.match(source, position)
        assert skipped is not None  # the pattern matches the empty string
        comments.append(source[position:skipped.end()])
        position = skipped.end()
        match = _IMPORT.match(source, position)
        if match is None:
            break
        target = posixpath.normpath(posixpath.join(posixpath.dirname(path), match["path"]))
        if match["ns"] is not None:
            binding = f"const {match['ns']} = {{M}};"
        else:
            names = ", ".join(name if name == local else f"{name}: {local}"
                              for name, local in _name_pairs(match["names"], path))
            binding = f"const {{ {names} }} = {{M}};"
        imports.append((binding, target))
        position = match.end()
    # The leading comments may quote import statements (the vendored files' usage
    # examples do): only the code after them is searched for imports left over.
    code = source[position:]
    if _LATE_IMPORT.search(code) or "import.meta" in code or re.search(r"\bimport\s*\(", code):
        raise InlineError(f"{path}: an import the inliner cannot place (only static imports "
                          "at the top of a module are supported)")
    return imports, "".join(comments).strip() + "\n" + code


def _split_exports(body: str, path: str) -> tuple[list[tuple[str, str]], str]:
    exports: list[tuple[str, str]] = []
    for match in _EXPORT_DECLARATION.finditer(body):
        exports.append((match["name"], match["name"]))
    body = _EXPORT_DECLARATION.sub(lambda m: m.group(0).removeprefix("export").lstrip(), body)
    for match in _EXPORT_LIST.finditer(body):
        exports.extend((alias, local) for local, alias in _name_pairs(match["names"], path))
    body = _EXPORT_LIST.sub("", body)
    leftover = _ANY_EXPORT.search(body)
    if leftover is not None:
        line = body[leftover.start():].split("\n", 1)[0]
        raise InlineError(f"{path}: an export form the inliner does not support: {line!r}")
    return exports, body


def _parse(path: str) -> _Module:
    imports, rest = _split_imports(_read(path), path)
    exports, body = _split_exports(rest, path)
    return _Module(path, tuple(imports), body, tuple(exports))


def _modules_in_order(entry: str) -> list[_Module]:
    """Every module `entry` needs, each after the modules it imports (depth first, in
    the order of the import statements: a deterministic order)."""
    ordered: list[_Module] = []
    done: set[str] = set()
    visiting: set[str] = set()

    def visit(path: str) -> None:
        if path in done:
            return
        if path in visiting:
            raise InlineError(f"import cycle through {path}")
        if len(done) + len(visiting) >= MAX_MODULES:
            raise InlineError(f"more than {MAX_MODULES} modules")
        visiting.add(path)
        module = _parse(path)
        for _, target in module.imports:
            visit(target)
        visiting.discard(path)
        done.add(path)
        ordered.append(module)

    visit(entry)
    return ordered


def inlined_modules(entry: str) -> tuple[str, str]:
    """The script that runs `entry` (a path under static/) and every module it imports,
    and the name of the constant holding `entry`'s exports."""
    modules = _modules_in_order(entry)
    names = {m.path: f"__tide_module_{i}" for i, m in enumerate(modules)}
    parts = ["// The tidechain receipt verifier, every module inlined (tide explorer "
             "verify-html).\n// Each module is one function below, in dependency order; "
             "the sources are in\n// src/tidechain/explorer/static/{verify,vendor}/.\n"]
    for module in modules:
        bindings = "".join(binding.replace("{M}", names[target]) + "\n"
                           for binding, target in module.imports)
        exported = ", ".join(name if name == local else f"{name}: {local}"
                             for name, local in module.exports)
        parts.append(f"\n// ---- {module.path} ----\n"
                     f"const {names[module.path]} = (() => {{\n{bindings}{module.body.strip()}\n"
                     f"return Object.freeze({{ {exported} }});\n}})();\n")
    script = "".join(parts)
    for hazard in _HTML_HAZARDS:
        if hazard in script.lower():
            raise InlineError(f"the inlined script contains {hazard!r}, which would end or "
                              "change the script element")
    return script, names[entry]


def _csp_source(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def build_verify_html() -> str:
    """The standalone verifier page: verify.html with its stylesheet and modules inlined
    and a CSP allowing only them. Deterministic: same sources, same bytes."""
    page = _read(PAGE)
    style = "\n" + _read(STYLESHEET)
    script = "\n" + inlined_modules(ENTRY_MODULE)[0]
    for needed in (_STYLE_LINK, _SCRIPT_TAG, _CSP_ANCHOR):
        if page.count(needed) != 1:
            raise InlineError(f"{PAGE} must contain {needed.strip()!r} exactly once")
    if "</style" in style.lower():
        raise InlineError(f"{STYLESHEET} contains '</style'")
    csp = ("default-src 'none'; "
           f"script-src {_csp_source(script)}; style-src {_csp_source(style)}; "
           "base-uri 'none'; form-action 'none'")
    return (page
            .replace(_CSP_ANCHOR, _CSP_ANCHOR
                     + f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n')
            .replace(_STYLE_LINK, f"<style>{style}</style>")
            .replace(_SCRIPT_TAG, f'<script type="module">{script}</script>'))


def verify_html_sha256(html: str) -> str:
    """The SHA-256 (hex) of the page's UTF-8 bytes, as published in docs/verify-html.md."""
    return hashlib.sha256(html.encode("utf-8")).hexdigest()
