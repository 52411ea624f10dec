"""A loopback-only static server for the in-browser harness.

Serves ``static/`` at ``/`` and ``node_modules/`` (the baseline libraries that ``npm ci`` installs
next to ``package.json``) at ``/node_modules/``; nothing else. Every answer carries the headers that
make the page cross-origin isolated (SharedArrayBuffer for WASM threads, fine-grained timers).
"""

from __future__ import annotations

import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

HARNESS_DIR = Path(__file__).resolve().parent
STATIC_DIR = HARNESS_DIR / "static"
NODE_MODULES_DIR = HARNESS_DIR / "node_modules"

ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}

MIME_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".wasm": "application/wasm",
    ".css": "text/css; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}

_CHUNK = 1 << 16


def resolve_request_path(url_path: str, static_dir: Path, node_modules_dir: Path) -> Path | None:
    """Map a request path to a regular file under one of the two roots, or None (a 404).

    Rejects anything that is not a plain file inside its root: ``..`` segments (also when
    percent-encoded), backslashes, NUL bytes, empty segments that would make a path absolute,
    directories, and symlinks that resolve outside the root.
    """
    path = unquote(urlsplit(url_path).path)
    if "\x00" in path or "\\" in path or not path.startswith("/"):
        return None
    if path == "/":
        path = "/index.html"
    parts = path[1:].split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    if parts[0] == "node_modules":
        root, rel = node_modules_dir, parts[1:]
    else:
        root, rel = static_dir, parts
    if not rel:
        return None
    root = root.resolve()
    candidate = root.joinpath(*rel)
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not real.is_relative_to(root) or not real.is_file():
        return None
    return real


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes: with Nagle's algorithm on, the body of a small
    # file waits for the browser's delayed ACK of the headers (tens of ms per module on Linux).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(send_body=False)

    def _serve(self, *, send_body: bool) -> None:
        target = resolve_request_path(self.path, self.server.static_dir, self.server.node_modules_dir)
        if target is None:
            self._send_plain(HTTPStatus.NOT_FOUND, b"not found\n", send_body)
            return
        try:
            size = target.stat().st_size
            fh = target.open("rb")
        except OSError:
            self._send_plain(HTTPStatus.NOT_FOUND, b"not found\n", send_body)
            return
        with fh:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", MIME_TYPES.get(target.suffix.lower(), "application/octet-stream"))
            self.send_header("Content-Length", str(size))
            self._send_common_headers()
            self.end_headers()
            if send_body:
                while chunk := fh.read(_CHUNK):
                    self.wfile.write(chunk)

    def _send_plain(self, status: HTTPStatus, body: bytes, send_body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self._send_common_headers()
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def _send_common_headers(self) -> None:
        for name, value in ISOLATION_HEADERS.items():
            self.send_header(name, value)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Malformed requests and unsupported methods: same headers as every other answer.
        body = f"{int(code)} {message or ''}\n".encode("utf-8", "replace")
        self.close_connection = True
        try:
            self.send_response(code, message)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self._send_common_headers()
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # quiet: no per-request logging


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, static_dir: Path, node_modules_dir: Path):
        self.static_dir = static_dir
        self.node_modules_dir = node_modules_dir
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a browser closing a connection mid-transfer is not worth a traceback


class HarnessServer:
    """Serves the harness page on 127.0.0.1 at a random free port, from a daemon thread.

    Contract: only ``static/`` (at ``/``) and ``node_modules/`` (at ``/node_modules/``) are served;
    anything else, path traversal and directories are 404. Every response carries COOP/COEP/CORP
    and ``Cache-Control: no-store``. ``start()`` and ``stop()`` are idempotent; ``url`` (e.g.
    ``http://127.0.0.1:41234``, no trailing slash) is valid while started. Usable as a context
    manager. A missing ``node_modules`` is not an error here: the page reports it when a baseline
    asks for a library.
    """

    def __init__(self, *, static_dir: Path | None = None, node_modules_dir: Path | None = None):
        self._static_dir = Path(static_dir) if static_dir is not None else STATIC_DIR
        self._node_modules_dir = Path(node_modules_dir) if node_modules_dir is not None else NODE_MODULES_DIR
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("HarnessServer is not started: call start() or use it as a context manager")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> "HarnessServer":
        with self._lock:
            if self._httpd is None:
                httpd = _Server(self._static_dir, self._node_modules_dir)
                thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                          name=f"harness-server-{httpd.server_address[1]}", daemon=True)
                thread.start()
                self._httpd, self._thread = httpd, thread
        return self

    def stop(self) -> None:
        with self._lock:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> "HarnessServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["HarnessServer", "resolve_request_path", "ISOLATION_HEADERS", "MIME_TYPES", "STATIC_DIR", "NODE_MODULES_DIR"]

