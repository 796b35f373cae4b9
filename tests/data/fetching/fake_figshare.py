"""A fake figshare (API listing + file server) on 127.0.0.1 for the download tests.

``FakeFigshare`` runs ``http.server`` in a thread. It serves
``/v2/articles/<id>/files`` (paged JSON, like figshare's public API) and
``/files/<name>`` (with or without HTTP Range support), records every request,
and can misbehave on purpose: drop a connection half-way, serve other bytes than
the listing promises, or fail the API.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_RANGE = re.compile(r"bytes=(\d+)-$")


@dataclass
class FakeFigshare:
    """State of the fake server; tests change it between requests."""

    files: dict[str, bytes] = field(default_factory=dict)  # URL path -> served bytes
    articles: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range)
    drop_once: dict[str, int] = field(default_factory=dict)  # path -> bytes sent, then cut
    range_support: bool = True
    api_status: int = 200
    delay_s: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def add_file(
        self, article_id: int, name: str, content: bytes, listed_md5: str | None = None
    ) -> str:
        """Serve ``content`` at ``/files/<name>`` and list it in the article; return its URL."""
        path = f"/files/{name}"
        self.files[path] = content
        self.articles.setdefault(article_id, []).append(
            {
                "id": len(self.files),
                "name": name,
                "size": len(content),
                "is_link_only": False,
                "download_url": self.url + path,
                "supplied_md5": "",
                "computed_md5": listed_md5 or hashlib.md5(content).hexdigest(),
            }
        )
        return self.url + path

    def file_requests(self, name: str) -> list[str | None]:
        """The Range headers of the requests made for ``/files/<name>``."""
        return [rng for path, rng in self.requests if path == f"/files/{name}"]

    def start(self) -> FakeFigshare:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                return None

            def do_GET(self) -> None:
                state._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # -- request handling -----------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parsed = urllib.parse.urlparse(handler.path)
        with self.lock:
            self.requests.append((parsed.path, handler.headers.get("Range")))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        # A request counts as in flight while it waits (delay_s), not while it is answered:
        # the client may read the last byte and send its next request before this thread
        # returns from writing, which would count one request too many.
        try:
            if self.delay_s:
                threading.Event().wait(self.delay_s)
        finally:
            with self.lock:
                self.in_flight -= 1
        match = re.match(r"^/v2/articles/(\d+)/files$", parsed.path)
        if match:
            self._listing(handler, int(match.group(1)), urllib.parse.parse_qs(parsed.query))
        elif parsed.path in self.files:
            self._file(handler, parsed.path)
        else:
            handler.send_error(404, "Not Found")

    def _listing(self, handler: BaseHTTPRequestHandler, article: int, query: dict) -> None:
        if self.api_status != 200 or article not in self.articles:
            handler.send_error(self.api_status if self.api_status != 200 else 404)
            return
        page = int(query.get("page", ["1"])[0])
        size = int(query.get("page_size", ["10"])[0])
        body = json.dumps(self.articles[article][(page - 1) * size : page * size]).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _file(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        content = self.files[path]
        start = 0
        match = _RANGE.match(handler.headers.get("Range") or "")
        if match and self.range_support:
            start = int(match.group(1))
            if start >= len(content):
                handler.send_error(416)
                return
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        else:
            handler.send_response(200)
        body = content[start:]
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Accept-Ranges", "bytes" if self.range_support else "none")
        handler.end_headers()
        cut = self.drop_once.pop(path, None)
        # A cut sends part of the promised body, then the connection closes (HTTP/1.0).
        handler.wfile.write(body if cut is None else body[:cut])
        handler.wfile.flush()
