"""The HTTP edges of the real production entry point (`python -m circleproject.serve`), over raw sockets.

Body caps decided from Content-Length before the body is read (413), chunked bodies counted while
they arrive (413), stalled bodies (408), half-sent request heads closed after the header timeout,
a bad Host logged as one WARNING line, uvicorn's loggers following LOG_LEVEL, and Secure cookies
over TLS (CIRCLES_TLS, or X-Forwarded-Proto from a trusted proxy only). Every wait is bounded by a
socket timeout far above the configured timeouts: the server either answers or closes, or the
test fails instead of hanging.
"""

import http.client
import json
import re
import socket

import pytest
from websockets.sync.client import connect as ws_connect

from tests.e2e.conftest import World
from tests.e2e.webhook_support import wait_for

pytestmark = pytest.mark.e2e

WEBHOOK_CAP = 4096
SHORT = {
    "CIRCLES_WEBHOOK_MAX_BYTES": str(WEBHOOK_CAP),
    "CIRCLES_HTTP_MAX_BODY_BYTES": "8192",
    "CIRCLES_HTTP_BODY_TIMEOUT_SECONDS": "1",
    "CIRCLES_HTTP_HEADER_TIMEOUT_SECONDS": "1",
    "STRIPE_WEBHOOK_SECRET": "whsec_http_edges",
}
PATIENCE = 20.0  # seconds a socket waits for the server: far above every configured timeout


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def served(start_server) -> int:
    """`circleproject.serve` with short caps and timeouts, trusting 127.0.0.1 as its proxy."""
    return port_of(start_server("serve", CIRCLES_TRUSTED_PROXIES="127.0.0.1", **SHORT))


@pytest.fixture(scope="module")
def quiet(start_server):
    """`circleproject.serve` with LOG_LEVEL=WARNING and no trusted proxy; returns (port, its process)."""
    port = port_of(start_server("serve", LOG_LEVEL="WARNING"))
    return port, start_server.started[-1]


def exchange(port: int, data: bytes) -> bytes:
    """Send `data` on a new connection and read until the server closes it (or PATIENCE runs out)."""
    with socket.create_connection(("127.0.0.1", port), timeout=PATIENCE) as sock:
        sock.sendall(data)
        return read_to_close(sock)


def read_to_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; socket.timeout (a failure) if it never does."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def status_and_body(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body or b"{}")


def head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode()


def test_declared_oversized_webhook_body_is_refused_before_it_is_read(served: int, world: World) -> None:
    # 300 MiB declared, 2 bytes sent: the answer comes without the body (it used to hang).
    path = f"/webhooks/stripe/{world.circle}"
    response = exchange(served, head("POST", path, f"Content-Length: {300 * 1024 * 1024}") + b"{}")
    assert status_and_body(response) == (413, {"error": f"body over {WEBHOOK_CAP} bytes"})
    assert b"connection: close" in response.lower()


def test_declared_oversized_body_elsewhere_is_refused_by_the_http_cap(served: int) -> None:
    response = exchange(served, head("POST", "/admin/login/", f"Content-Length: {10 * 1024 * 1024}"))
    assert status_and_body(response) == (413, {"error": "body over 8192 bytes"})


def test_chunked_body_past_the_cap_is_refused_while_it_arrives(served: int, world: World) -> None:
    # No Content-Length; more than the cap in chunks, and the body never ends: 413 regardless.
    chunk = b"x" * 1000
    data = head("POST", f"/webhooks/stripe/{world.circle}", "Transfer-Encoding: chunked")
    data += b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5))
    assert status_and_body(exchange(served, data)) == (413, {"error": f"body over {WEBHOOK_CAP} bytes"})


def test_body_that_stops_arriving_is_answered_408(served: int, world: World) -> None:
    data = head("POST", f"/webhooks/stripe/{world.circle}", "Content-Length: 100") + b'{"id": '
    assert status_and_body(exchange(served, data)) == (408, {"error": "no request body for 1 s"})


def test_bodies_within_the_caps_still_reach_django(served: int, world: World) -> None:
    body = b'{"id": "evt_1"}'
    data = head(
        "POST", f"/webhooks/stripe/{world.circle}", f"Content-Length: {len(body)}", "Connection: close"
    )
    assert status_and_body(exchange(served, data + body))[0] == 401  # unsigned: refused by the view
    chunked = head(
        "POST", f"/webhooks/stripe/{world.circle}", "Transfer-Encoding: chunked", "Connection: close"
    )
    chunked += b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    assert status_and_body(exchange(served, chunked))[0] == 401


def test_half_sent_request_heads_are_closed_after_the_header_timeout(served: int) -> None:
    sockets = [socket.create_connection(("127.0.0.1", served), timeout=PATIENCE) for _ in range(50)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        for sock in sockets:
            assert read_to_close(sock) == b""  # closed without an answer
    finally:
        for sock in sockets:
            sock.close()
    # A connection that sends nothing at all is closed the same way.
    with socket.create_connection(("127.0.0.1", served), timeout=PATIENCE) as silent:
        assert read_to_close(silent) == b""


def test_header_timeout_also_holds_for_the_next_request_on_a_kept_alive_connection(served: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", served, timeout=PATIENCE)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read()) == {"status": "ok"}
        connection.sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 1")  # then nothing
        assert read_to_close(connection.sock) == b""
    finally:
        connection.close()


def test_a_bad_host_header_is_one_warning_line_without_traceback(quiet) -> None:
    port, process = quiet
    response = exchange(port, b"GET /healthz HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 400 ")
    line = wait_for(lambda: [row for row in process.output().splitlines() if "evil.example" in row])
    assert len(line) == 1 and " WARNING django.security.DisallowedHost Invalid HTTP_HOST header" in line[0]
    assert "Traceback" not in process.output() and " ERROR " not in process.output()


def test_uvicorn_follows_log_level_when_its_own_level_is_unset(quiet, world: World) -> None:
    port, process = quiet
    with ws_connect(f"ws://127.0.0.1:{port}/{world.circle}") as websocket:
        websocket.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "whoami"}))
        assert json.loads(websocket.recv(timeout=PATIENCE))["id"] == 1
    exchange(port, head("GET", "/healthz", "Connection: close"))
    info = [row for row in process.output().splitlines() if re.search(r"\bINFO\b", row)]
    assert info == []  # no "Started server process", no "connection open"/"closed" per WebSocket


def set_cookies(port: int, *headers: str) -> list[str]:
    """The Set-Cookie headers of GET /admin/login/ (which sets the CSRF cookie)."""
    response = exchange(port, head("GET", "/admin/login/", "Connection: close", *headers))
    assert response.startswith(b"HTTP/1.1 200 ")
    lines = response.partition(b"\r\n\r\n")[0].decode().split("\r\n")
    return [line.split(":", 1)[1] for line in lines if line.lower().startswith("set-cookie:")]


def secure(cookie: str) -> bool:
    return "secure" in [part.strip().lower() for part in cookie.split(";")]


def test_cookies_are_secure_when_a_trusted_proxy_says_https(served: int, quiet) -> None:
    assert [secure(c) for c in set_cookies(served, "X-Forwarded-Proto: https")] == [True]
    assert [secure(c) for c in set_cookies(served)] == [False]  # plain HTTP, no claim
    # The same claim from a client that is not a trusted proxy changes nothing.
    assert [secure(c) for c in set_cookies(quiet[0], "X-Forwarded-Proto: https")] == [False]


def test_cookies_are_always_secure_with_circles_tls(start_server) -> None:
    port = port_of(start_server("serve", CIRCLES_TLS="1"))
    assert [secure(c) for c in set_cookies(port)] == [True]
