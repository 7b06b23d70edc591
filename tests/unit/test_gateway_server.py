"""The local gateway on a port: events name the address it is bound to, whatever Host the client
sends, and its log lines never carry a query string (FHIR searches put names, birth dates and
record numbers there)."""

from __future__ import annotations

import http.client
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_fakes import write_fake_api

from local.gateway import Gateway
from local.http_messages import HttpRequest
from local.server import GatewayServer, serve_in_thread


@pytest.fixture
def server(tmp_path: Path, restore_environ: None) -> Iterator[GatewayServer]:
    gateway = Gateway(write_fake_api(tmp_path), root=tmp_path, port=0)
    server, _ = serve_in_thread(gateway)
    yield server
    server.shutdown()
    server.server_close()


def get(server: GatewayServer, target: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("GET", target, headers=headers)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    return response.status, json.loads(body)


def send_raw(server: GatewayServer, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(data)
        return connection.recv(4096)


def test_the_event_names_the_bound_address_not_the_clients_host(
    tmp_path: Path, restore_environ: None
) -> None:
    # Given a gateway bound to 127.0.0.1:3999 and a client claiming another host
    gateway = Gateway(write_fake_api(tmp_path), root=tmp_path, port=3999)
    request = HttpRequest("GET", "/items", "", [("Authorization", "allow"), ("Host", "evil.example")], b"")

    # When the gateway builds the function's event
    event = json.loads(gateway.handle(request).body)["event"]

    # Then requestContext names the address the gateway serves, with its port; the header stays as sent
    assert event["requestContext"]["domainName"] == "127.0.0.1:3999"
    assert event["headers"]["Host"] == "evil.example"
    assert event["headers"]["X-Forwarded-Port"] == "3999"


def test_a_served_event_names_the_address_and_port_actually_bound(server: GatewayServer) -> None:
    # Given a gateway on a port the system chose, called over HTTP with a foreign Host header
    # When a function receives the request
    status, body = get(server, "/Prod/items/7", {"Authorization": "allow", "Host": "evil.example:443"})

    # Then its requestContext names the bound address, and the stage only because the client used it
    assert status == 200
    context = body["event"]["requestContext"]
    assert context["domainName"] == f"127.0.0.1:{server.port}"
    assert context["path"] == "/Prod/items/7"


def test_request_log_lines_carry_the_path_but_not_the_query(
    server: GatewayServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a search whose query names a patient
    caplog.set_level(logging.INFO, logger="local")

    # When it is served
    status, _ = get(server, "/items?family=Chalmers&birthdate=1974-12-25", {"Authorization": "allow"})

    # Then the log says which path was answered, and nothing of the query
    assert status == 200
    assert "GET /items" in caplog.text
    assert "Chalmers" not in caplog.text and "1974-12-25" not in caplog.text


def test_a_malformed_request_line_is_logged_without_its_query(
    server: GatewayServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a request line the server cannot parse, with a query naming a patient
    caplog.set_level(logging.INFO, logger="local")

    # When it is sent
    answer = send_raw(server, b"GET /items?family=Chalmers extra HTTP/1.1\r\n\r\n")

    # Then the client gets 400 and the error logged leaves the query out
    assert answer.startswith(b"HTTP/1.1 400")
    assert "Bad request syntax" in caplog.text
    assert "Chalmers" not in caplog.text


def test_a_function_answering_no_proxy_result_is_502_and_its_answer_is_not_logged(
    tmp_path: Path, restore_environ: None, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a function that answers a patient's record instead of a proxy result
    gateway = Gateway(write_fake_api(tmp_path), root=tmp_path, port=3999)
    caplog.set_level(logging.INFO, logger="local")

    # When it is called
    response = gateway.handle(HttpRequest("GET", "/not-proxy", "", [], b""))

    # Then API Gateway's integration failure answers, and the log names the function, not the record
    assert response.status == 502
    assert "NotProxyFunction" in caplog.text
    assert "Chalmers" not in caplog.text
