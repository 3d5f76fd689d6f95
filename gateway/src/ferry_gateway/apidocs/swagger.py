"""``/docs`` (Swagger UI, from the ``swagger-ui-bundle`` package's own files: no CDN, so the page
works where the gateway's clients can reach nothing else) and ``/openapi.json``.

Assets are served from an allow-list of the files the package ships, looked up by exact name, so
no request path is ever joined onto a file system path. Their URLs carry Swagger UI's version,
hence cacheable for a year; the page and the document are not cached (the document changes with
every promotion).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import orjson
import swagger_ui_bundle
from ferry_common.asgi import Send
from ferry_common.errors import ErrorCode, FerryError, FieldError

from ferry_gateway.apidocs.refresh import Refresher
from ferry_gateway.edge.request import JSON, RequestContext, respond

_CONTENT_TYPES = {
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".png": b"image/png",
    ".map": b"application/json",
    ".html": b"text/html; charset=utf-8",
}
# The package's own page and initializer point at the petstore demo; ours replace them.
_NOT_SERVED = frozenset({"index.html", "index.j2", "swagger-initializer.js"})
_IMMUTABLE = [
    (b"cache-control", b"public, max-age=31536000, immutable"),
    (b"x-content-type-options", b"nosniff"),
]
_FRESH = [(b"cache-control", b"no-cache"), (b"x-content-type-options", b"nosniff")]

INIT_JS = b"""window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: true,
    defaultModelsExpandDepth: 1,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
"""


def _assets(root: Path) -> dict[str, Path]:
    return {
        p.name: p
        for p in root.iterdir()
        if p.is_file() and p.name not in _NOT_SERVED and p.suffix in _CONTENT_TYPES
    }


class ApiDocs:
    """Answers ``/openapi.json`` and ``/docs*`` (GET only: the router checks the method)."""

    def __init__(self, refresher: Refresher, root: Path | None = None) -> None:
        self.refresher = refresher
        root = root or Path(str(swagger_ui_bundle.swagger_ui_path))
        self.version = root.name.removeprefix("swagger-ui-")
        self.prefix = f"/docs/{self.version}/"
        self._files = _assets(root)
        self._cache: dict[str, bytes] = {}
        self._page_for: tuple[bytes, bytes] = (b"", b"")  # (document, page) last rendered

    @staticmethod
    def owns(path: str) -> bool:
        return path == "/openapi.json" or path == "/docs" or path.startswith("/docs/")

    @property
    def page(self) -> bytes:
        """The page, rendered again only when the document changed (its fallback lists it)."""
        doc = self.refresher.document
        if self._page_for[0] is not doc:
            self._page_for = (doc, self._render(orjson.loads(doc)).encode())
        return self._page_for[1]

    def _render(self, document: dict[str, Any]) -> str:
        p = self.prefix
        rows = "".join(
            f"<tr><td><code>{html.escape(method.upper())}</code></td><td><code>{html.escape(path)}</code></td>"
            f"<td>{html.escape(str(op.get('summary', '')))}</td></tr>"
            for path, ops in document["paths"].items()
            for method, op in ops.items()
        )
        return (
            "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<title>Ferry gateway API</title>"
            f"<link rel='stylesheet' href='{p}swagger-ui.css'>"
            f"<link rel='icon' type='image/png' href='{p}favicon-32x32.png' sizes='32x32'>"
            "</head><body>"
            "<div id='swagger-ui'></div>"
            # without JavaScript: the operations, and the document for tools
            "<noscript><h1>Ferry gateway API</h1>"
            "<p>OpenAPI document: <a href='/openapi.json'>/openapi.json</a>."
            " Authenticate with <code>Authorization: Bearer &lt;JWT&gt;</code> or <code>X-API-Key</code>.</p>"
            f"<table>{rows}</table></noscript>"
            f"<script src='{p}swagger-ui-bundle.js' charset='utf-8'></script>"
            "<script src='/docs/ferry-init.js' charset='utf-8'></script>"
            "</body></html>\n"
        )

    async def handle(self, path: str, send: Send, ctx: RequestContext) -> int:
        if path == "/openapi.json":
            return await respond(send, ctx, 200, self.refresher.document, JSON, _FRESH)
        if path in ("/docs", "/docs/"):
            return await respond(send, ctx, 200, self.page, b"text/html; charset=utf-8", _FRESH)
        if path == "/docs/ferry-init.js":
            return await respond(send, ctx, 200, INIT_JS, _CONTENT_TYPES[".js"], _FRESH)
        name = path.removeprefix(self.prefix) if path.startswith(self.prefix) else None
        file = self._files.get(name) if name is not None else None
        if file is None:
            raise FerryError(
                ErrorCode.NOT_FOUND, f"no route for {path}", [FieldError("path", "unknown path")]
            )
        body = self._cache.get(file.name)
        if body is None:
            body = self._cache[file.name] = file.read_bytes()
        return await respond(send, ctx, 200, body, _CONTENT_TYPES[file.suffix], _IMMUTABLE)
