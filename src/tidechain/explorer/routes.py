"""Serving the explorer's files: `/explorer/...` from `static/`, `/` redirected there,
each answer with a Content-Security-Policy of `default-src 'self'`.

The files are plain HTML, CSS and ES modules: no template, no build step, nothing
computed here. What a path may name is decided by the files themselves: a regular file
under `static/` whose every segment is an ordinary name (no dot-files, no `..`), with
an extension in `CONTENT_TYPES`; anything else is a 404, and a directory is never
listed. The pages read the API from the browser with the visitor's own credentials
(docs/explorer.md); this module never touches the node.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from aiohttp import web

from tidechain.explorer import STATIC_DIR
from tidechain.explorer.verify_html import build_verify_html

PREFIX = "/explorer/"
INDEX = "index.html"
STANDALONE_VERIFIER = PREFIX + "download/verify.html"
"""The receipt verifier as one self-contained file (explorer/verify_html.py), served as
a download to keep and open offline: the same bytes as `tide explorer verify-html`."""

CSP = ("default-src 'self'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'; object-src 'none'")
"""Only this node's own files and API: no inline script or style, no third party, no
framing (the pages hold a member key in memory), no plugins."""

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    # The pages change with the node's version: revalidate each time (ETag and
    # Last-Modified still make that a 304).
    "Cache-Control": "no-cache",
}
"""Sent with every answer under /explorer/, the 404s included."""

CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}
"""What may be served, by extension, with the type it is served as: the rest is 404."""

MAX_PATH_CHARS = 512
"""Longer than any file the explorer ships; a longer path is refused unread."""

MAX_SEGMENTS = 8
"""Deeper than any folder the explorer ships."""

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
"""An ordinary file or folder name: no leading dot (hidden files, `.` and `..`)."""


def static_file(tail: str, root: Path = STATIC_DIR) -> Path | None:
    """The file under `root` that the path `tail` (after /explorer/) names, or None.

    An empty tail or one ending in `/` names that folder's index.html. A file is
    served only if it resolves inside `root` (a symbolic link out is refused) and its
    extension is one of CONTENT_TYPES.
    """
    if len(tail) > MAX_PATH_CHARS:
        return None
    if tail == "" or tail.endswith("/"):
        tail += INDEX
    segments = tail.split("/")
    if len(segments) > MAX_SEGMENTS or not all(_SEGMENT.fullmatch(s) for s in segments):
        return None
    base = root.resolve()
    path = base.joinpath(*segments).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        return None
    if path.suffix.lower() not in CONTENT_TYPES:
        return None
    return path


def _not_found() -> web.Response:
    return web.Response(status=404, text="not found\n", content_type="text/plain",
                        headers=SECURITY_HEADERS)


async def _serve(request: web.Request) -> web.StreamResponse:
    path = static_file(request.match_info["tail"])
    if path is None:
        return _not_found()
    headers = dict(SECURITY_HEADERS)
    headers["Content-Type"] = CONTENT_TYPES[path.suffix.lower()]
    return web.FileResponse(path, headers=headers)


@functools.cache
def _standalone_verifier() -> bytes:
    # Deterministic (a pure function of the shipped files): built once per process.
    return build_verify_html().encode("utf-8")


async def _download_verifier(request: web.Request) -> web.StreamResponse:
    headers = dict(SECURITY_HEADERS)
    headers["Content-Disposition"] = 'attachment; filename="verify.html"'
    return web.Response(body=_standalone_verifier(), content_type="text/html",
                        charset="utf-8", headers=headers)


async def _to_explorer(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(PREFIX, headers=SECURITY_HEADERS)


def add_explorer_routes(app: web.Application) -> None:
    """The explorer's routes on the API's application: `/` and `/explorer` redirect to
    `/explorer/`, whose files are served from `static/` with SECURITY_HEADERS; the
    standalone verifier is a download at STANDALONE_VERIFIER."""
    app.router.add_get("/", _to_explorer)
    app.router.add_get("/explorer", _to_explorer)
    app.router.add_get(STANDALONE_VERIFIER, _download_verifier)
    app.router.add_get(PREFIX + "{tail:.*}", _serve)
