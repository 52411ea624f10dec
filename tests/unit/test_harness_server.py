"""HarnessServer: what it serves, what it refuses, the headers, and where it listens."""

from __future__ import annotations

import http.client
import re
import socket
from pathlib import Path

import pytest

from farm.harness.server import ISOLATION_HEADERS, STATIC_DIR, HarnessServer, _Handler


def get(server: HarnessServer, raw_path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """Send ``raw_path`` exactly as written (http.client does not normalise it)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.putrequest(method, raw_path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A static root, a node_modules root and a secret file outside both."""
    static = tmp_path / "static"
    nm = tmp_path / "node_modules"
    (static / "sub").mkdir(parents=True)
    (nm / "@scope" / "pkg" / "dist").mkdir(parents=True)
    (static / "index.html").write_text("<!doctype html><title>t</title>")
    (static / "app.mjs").write_text("export const x = 1;")
    (static / "sub" / "data.json").write_text("{}")
    (nm / "@scope" / "pkg" / "dist" / "lib.js").write_text("var lib = 1;")
    (nm / "@scope" / "pkg" / "dist" / "lib.wasm").write_bytes(b"\0asm\1\0\0\0")
    (nm / "@scope" / "pkg" / "dist" / "lib.js.map").write_text("{}")
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    (static / "escape.txt").symlink_to(secret)
    return static, nm, secret


@pytest.fixture
def server(roots: tuple[Path, Path, Path]):
    static, nm, _ = roots
    with HarnessServer(static_dir=static, node_modules_dir=nm) as srv:
        yield srv


def test_serves_the_real_index_html_with_isolation_headers():
    with HarnessServer() as srv:
        status, headers, body = get(srv, "/index.html")
        assert status == 200
        assert headers["content-type"].startswith("text/html")
        assert b"harness.js" in body
        for name, value in ISOLATION_HEADERS.items():
            assert headers[name.lower()] == value
        status, headers, body = get(srv, "/harness.js")
        assert status == 200 and headers["content-type"].startswith("text/javascript")
        assert get(srv, "/")[2] == (STATIC_DIR / "index.html").read_bytes()


@pytest.mark.parametrize(
    "path, mime",
    [
        ("/app.mjs", "text/javascript"),
        ("/sub/data.json", "application/json"),
        ("/node_modules/@scope/pkg/dist/lib.js", "text/javascript"),
        ("/node_modules/@scope/pkg/dist/lib.wasm", "application/wasm"),
        ("/node_modules/@scope/pkg/dist/lib.js.map", "application/json"),
    ],
)
def test_serves_both_roots_with_correct_mime_types(server: HarnessServer, path: str, mime: str):
    status, headers, _ = get(server, path)
    assert status == 200
    assert headers["content-type"].startswith(mime)
    assert headers["cross-origin-embedder-policy"] == "require-corp"
    assert headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/node_modules/../secret.txt",
        "/node_modules/%2e%2e/%2e%2e/secret.txt",
        "/node_modules/@scope/..%2f..%2f..%2fsecret.txt",
        "/..%5csecret.txt",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/etc/passwd%00.html",
        "/escape.txt",  # a symlink that resolves outside the root
    ],
)
def test_path_traversal_is_404(server: HarnessServer, path: str):
    status, headers, body = get(server, path)
    assert status == 404
    assert b"do not serve" not in body
    assert headers["cross-origin-opener-policy"] == "same-origin"


@pytest.mark.parametrize("path", ["/sub", "/sub/", "/node_modules", "/node_modules/", "/node_modules/@scope/pkg/"])
def test_directories_are_404_not_listings(server: HarnessServer, path: str):
    assert get(server, path)[0] == 404


def test_files_outside_the_two_roots_are_404():
    with HarnessServer() as srv:
        for path in ("/server.py", "/PROTOCOL.md", "/package.json", "/static/index.html", "/__init__.py"):
            assert get(srv, path)[0] == 404, path


def test_binds_loopback_only(server: HarnessServer):
    assert server.url.startswith("http://127.0.0.1:")
    # Bound to 127.0.0.1 exactly, not 0.0.0.0: another loopback address on the same port is refused.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.2", server.port), timeout=2).close()


def test_start_stop_are_idempotent_and_url_needs_a_running_server(roots):
    static, nm, _ = roots
    srv = HarnessServer(static_dir=static, node_modules_dir=nm)
    with pytest.raises(RuntimeError, match="not started"):
        _ = srv.url
    srv.start()
    url = srv.url
    srv.start()
    assert srv.url == url
    assert get(srv, "/index.html")[0] == 200
    srv.stop()
    srv.stop()
    assert not srv.running
    with pytest.raises(RuntimeError):
        _ = srv.url


def test_head_and_unsupported_methods_carry_the_headers(server: HarnessServer):
    status, headers, body = get(server, "/index.html", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    status, headers, _ = get(server, "/index.html", method="POST")
    assert status == 501
    assert headers["cross-origin-resource-policy"] == "same-origin"


def test_requests_are_not_logged(server: HarnessServer, capfd):
    get(server, "/index.html")
    get(server, "/missing")
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def _module_imports(text: str) -> list[str]:
    """The harness modules a module imports statically (``import ... from './x.js'``, also over
    several lines, and ``import './x.js'``); dynamic ``import(url)`` of libraries is not one."""
    return re.findall(r"""(?:\bfrom|\bimport)\s*['"]\./([\w.-]+\.js)['"]""", text)


def test_index_html_preloads_exactly_the_modules_the_harness_imports():
    """index.html asks for every module at once (modulepreload) instead of one level of imports after
    another; a module added to, or dropped from, the import graph must be added or dropped there."""
    graph, todo = set(), ["harness.js"]
    while todo:
        module = todo.pop()
        if module not in graph:
            graph.add(module)
            todo.extend(_module_imports((STATIC_DIR / module).read_text()))
    index = (STATIC_DIR / "index.html").read_text()
    preloaded = re.findall(r'<link rel="modulepreload" href="\./([\w.-]+\.js)">', index)
    assert len(preloaded) == len(set(preloaded))
    assert set(preloaded) == graph
    assert {"harness.js", "prng.js", "baseline_tfjs_block.js"} <= graph  # the walk follows imports down


def test_a_kept_alive_connection_serves_one_request_after_another_with_nagle_off(server: HarnessServer, monkeypatch):
    """Browsers fetch the page's modules over kept-alive connections; with Nagle's algorithm on,
    each small answer there waited for a delayed ACK (bench/farm.py --n times it both ways). The
    socket the server answers on has TCP_NODELAY set."""
    nodelay: list[int] = []
    setup = _Handler.setup

    def setup_and_look(self):
        setup(self)
        nodelay.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(_Handler, "setup", setup_and_look)
    assert _Handler.disable_nagle_algorithm is True
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        for name in ("app.mjs", "app.mjs", "index.html"):
            conn.request("GET", "/" + name)
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() and not resp.will_close
    finally:
        conn.close()
    assert len(nodelay) == 1 and nodelay[0] != 0  # one connection for the three answers, Nagle off
