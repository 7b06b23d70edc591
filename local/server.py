"""The HTTP server in front of a Gateway: a threaded HTTP/1.1 server that reads each request (with
Content-Length or chunked), hands it to the gateway and writes the answer.

Its log lines name the method, the path and the status, never the query string: FHIR searches carry
names, birth dates and record numbers there.
"""

from __future__ import annotations

import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local.gateway import Gateway
from local.http_messages import MAX_BODY_BYTES, HttpRequest

logger = logging.getLogger(__name__)

# Answers that never carry a body (RFC 9110 15.3.5, 15.4.5): no Content-Length, nothing after the headers.
BODILESS_STATUSES = (204, 304)
# A query string in a line of text: from "?" up to the next space or quote.
_QUERY = re.compile(r"\?[^\s'\"]*")


def without_query(text: str) -> str:
    """``text`` with every query string replaced by ``?…``."""
    return _QUERY.sub("?…", text)


class _Handler(BaseHTTPRequestHandler):
    server: GatewayServer
    protocol_version = "HTTP/1.1"
    server_version = "encounter-api-local"

    def _serve(self) -> None:
        raw_path, _, query = self.path.partition("?")
        if raw_path.startswith(("http://", "https://")):
            raw_path = "/" + raw_path.split("://", 1)[1].partition("/")[2]
        try:
            body = self._read_body()
        except ValueError:
            self.send_error(400, "bad request body")
            return
        request = HttpRequest(
            method=self.command,
            raw_path=raw_path or "/",
            query=query,
            headers=[(name, value) for name, value in self.headers.items()],
            body=body,
            source_ip=self.client_address[0],
        )
        response = self.server.gateway.handle(request)
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        length = 0 if self.command == "HEAD" or response.status in BODILESS_STATUSES else len(response.body)
        if response.status not in BODILESS_STATUSES:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        if length:
            self.wfile.write(response.body)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunks()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > MAX_BODY_BYTES:
            # Too large: answer 413 without reading it all, and close the connection.
            self.close_connection = True
            return b"x" * (MAX_BODY_BYTES + 1)
        return self.rfile.read(length) if length else b""

    def _read_chunks(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES + 1:
                self.close_connection = True
                return b"x" * (MAX_BODY_BYTES + 1)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One line per answered request: client, method, path (no query string) and status."""
        path = getattr(self, "path", "") or ""
        command = getattr(self, "command", None) or "-"
        status = code.value if hasattr(code, "value") else code
        logger.info("%s %s %s %s", self.address_string(), command, without_query(path), status)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        # The base class quotes the raw request line in its errors ("Bad request syntax ('GET /x?...')").
        logger.info("%s %s", self.address_string(), without_query(format % args))


class GatewayServer(ThreadingHTTPServer):
    """The threaded HTTP server in front of a Gateway; it tells the gateway the address it is bound to."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, gateway: Gateway, host: str = "127.0.0.1", port: int = 0) -> None:
        self.gateway = gateway
        super().__init__((host, port), _Handler)
        gateway.set_address(str(self.server_address[0]), int(self.server_address[1]))

    @property
    def port(self) -> int:
        """The port actually bound (the one asked for, or the one the system chose for 0)."""
        return int(self.server_address[1])


def serve_in_thread(
    gateway: Gateway, host: str = "127.0.0.1", port: int = 0
) -> tuple[GatewayServer, threading.Thread]:
    """Start the gateway's server in a daemon thread; stop it with ``server.shutdown()``."""
    server = GatewayServer(gateway, host, port)
    thread = threading.Thread(target=server.serve_forever, name=f"gateway-{server.port}", daemon=True)
    thread.start()
    return server, thread
