"""The local stack serves openapi.yaml and a Swagger UI page that browses it, without a token."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
import requests
import yaml

from local.api_docs import OPENAPI_FILE, SWAGGER_UI_DIR
from local.stack import LocalStack

TIMEOUT_SECONDS = 30
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class _References(HTMLParser):
    """The URLs a page loads: scripts' src and links' href."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


def page_references(page: str) -> tuple[list[str], str]:
    """(the assets the page loads, the description URL it gives Swagger UI)."""
    parser = _References()
    parser.feed(page)
    description = re.search(r'url:\s*"([^"]+)"', page)
    assert description is not None, page
    return parser.urls, description.group(1)


def media_type(response: requests.Response) -> str:
    return response.headers["Content-Type"].split(";")[0].strip()


def test_openapi_yaml_is_served_as_the_file_without_a_token(local_stack: LocalStack) -> None:
    # When the description is asked for with no Authorization header
    response = requests.get(f"{local_stack.base_url}/openapi.yaml", timeout=TIMEOUT_SECONDS)

    # Then it is the repository's file, as YAML that parses to an OpenAPI description
    assert response.status_code == 200, response.text
    assert media_type(response) == "application/yaml"
    assert response.content == OPENAPI_FILE.read_bytes()
    document = yaml.safe_load(response.content)
    assert document["openapi"].startswith("3.")
    assert "/api/fhir/Encounter" in document["paths"]


def test_docs_page_loads_the_description_and_swagger_ui_without_a_token(local_stack: LocalStack) -> None:
    # When the docs page is asked for with no Authorization header
    page_url = f"{local_stack.base_url}/docs"
    page = requests.get(page_url, timeout=TIMEOUT_SECONDS)

    # Then it is an HTML page that gives Swagger UI the served description
    assert page.status_code == 200, page.text
    assert media_type(page) == "text/html"
    assets, description = page_references(page.text)
    assert urljoin(page_url, description) == f"{local_stack.base_url}/openapi.yaml"
    assert requests.get(urljoin(page_url, description), timeout=TIMEOUT_SECONDS).status_code == 200

    # And every asset it loads is Swagger UI's file of swagger-ui-dist, with its content type
    names = {urlsplit(url).path.rsplit("/", 1)[-1] for url in assets}
    assert {"swagger-ui-bundle.js", "swagger-ui.css"} <= names
    for url in assets:
        asset = requests.get(urljoin(page_url, url), timeout=TIMEOUT_SECONDS)
        name = urlsplit(asset.url).path.rsplit("/", 1)[-1]
        assert asset.status_code == 200, url
        assert media_type(asset) == ASSET_TYPES[name[name.rindex(".") :]], url
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
        assert asset.content == (SWAGGER_UI_DIR / name).read_bytes(), url
    assert "SwaggerUIBundle" in (SWAGGER_UI_DIR / "swagger-ui-bundle.js").read_text(encoding="utf-8")


def test_docs_page_under_the_stage_prefix_points_under_it(local_stack: LocalStack) -> None:
    # Given the stage prefix of an execute-api URL
    assert local_stack.gateway is not None
    base = f"{local_stack.root_url}/{local_stack.gateway.definition.stage}/api/fhir"

    # When the page is asked for under it
    page = requests.get(f"{base}/docs", timeout=TIMEOUT_SECONDS)

    # Then the description and the assets it names are there too
    assets, description = page_references(page.text)
    assert urljoin(f"{base}/docs", description) == f"{base}/openapi.yaml"
    for url in [description, *assets]:
        assert requests.get(urljoin(f"{base}/docs", url), timeout=TIMEOUT_SECONDS).status_code == 200, url


def test_head_answers_the_types_without_a_body(local_stack: LocalStack) -> None:
    for path, expected in (("openapi.yaml", "application/yaml"), ("docs", "text/html")):
        response = requests.head(f"{local_stack.base_url}/{path}", timeout=TIMEOUT_SECONDS)

        assert response.status_code == 200, path
        assert media_type(response) == expected
        assert response.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "docs/no-such-asset.js",
        "docs/LICENSE",  # installed with the assets, but no asset of the page
        "docs/.installed-swagger-ui-dist.js",
        "docs/%2E%2E/openapi.yaml",
        "docs/sub/swagger-ui.css",
    ],
)
def test_unknown_docs_path_is_404_operation_outcome(local_stack: LocalStack, path: str) -> None:
    # When a path under docs/ names no asset of the page
    response = requests.get(f"{local_stack.base_url}/{path}", timeout=TIMEOUT_SECONDS)

    # Then it is the gateway's 404 for a path it does not serve
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_description_is_read_only(local_stack: LocalStack) -> None:
    # When a client writes to the description's path
    response = requests.put(
        f"{local_stack.base_url}/openapi.yaml", data=b"openapi: 3.0.3", timeout=TIMEOUT_SECONDS
    )

    # Then nothing serves it, and the file is unchanged
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    assert requests.get(f"{local_stack.base_url}/openapi.yaml", timeout=TIMEOUT_SECONDS).content == (
        OPENAPI_FILE.read_bytes()
    )
