"""Serving the explorer's files: `/explorer/...` from `static/`, `/` redirected there,
each answer with a Content-Security-Policy of `default-src 'self'`."""

from __future__ import annotations

from aiohttp import web

from tidechain.explorer import STATIC_DIR

CSP = "default-src 'self'"


def add_explorer_routes(app: web.Application) -> None:
    """The explorer's routes on the API's application (filled in by the explorer)."""
    _ = (app, STATIC_DIR, CSP)  # the explorer issue fills this in
