"""A rest-hook endpoint on loopback for the notification tests: it answers each POST with a scripted
status and keeps what it was sent."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fhir_api.fhir import fhirjson


class Receiver:
    """A loopback endpoint answering ``first`` then ``status``, keeping what it got."""

    def __init__(self, status: int, first: tuple[int, ...] = ()) -> None:
        self.got: list[tuple[str, dict[str, str], bytes]] = []
        got = self.got
        answers = list(first)  # answered, in turn, before ``status``

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                got.append((self.path, dict(self.headers.items()), body))
                self.send_response(answers.pop(0) if answers else status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def versions(self) -> list[tuple[str, str]]:
        """The (id, versionId) of each resource POSTed, in the order they came."""
        return [
            (document["id"], document["meta"]["versionId"])
            for document in (fhirjson.loads(body) for _, _, body in self.got)
        ]
