"""The local docs answers on their own: what the page names, and what is never served."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.api_docs import ApiDocs


@pytest.fixture
def docs(tmp_path: Path) -> ApiDocs:
    """Docs over a description and an assets folder of this test's own."""
    (tmp_path / "openapi.yaml").write_text("openapi: 3.0.3\n", encoding="utf-8")
    assets = tmp_path / "swagger-ui"
    assets.mkdir()
    (assets / "swagger-ui-bundle.js").write_text("window.SwaggerUIBundle = () => {};\n", encoding="utf-8")
    (assets / "swagger-ui.css").write_text("body {}\n", encoding="utf-8")
    (assets / "LICENSE").write_text("license\n", encoding="utf-8")
    (tmp_path / "secret.js").write_text("outside the assets\n", encoding="utf-8")
    return ApiDocs(tmp_path / "openapi.yaml", assets)


def test_page_names_the_description_and_assets_under_the_stage(docs: ApiDocs) -> None:
    answer = docs.answer("GET", "/api/fhir/docs", "/Prod")

    assert answer is not None and answer.status == 200
    page = answer.body.decode("utf-8")
    assert 'url: "/Prod/api/fhir/openapi.yaml"' in page
    assert 'src="/Prod/api/fhir/docs/swagger-ui-bundle.js"' in page
    assert 'href="/Prod/api/fhir/docs/swagger-ui.css"' in page
    assert "validatorUrl: null" in page  # the page calls no server but this one


def test_page_without_swagger_ui_installed_names_the_fix(tmp_path: Path) -> None:
    docs = ApiDocs(tmp_path / "openapi.yaml", tmp_path / "swagger-ui")

    answer = docs.answer("GET", "/api/fhir/docs")

    assert answer is not None and answer.status == 503
    assert "run make install" in answer.body.decode("utf-8")


@pytest.mark.parametrize(
    "path",
    [
        "/api/fhir/docs/LICENSE",
        "/api/fhir/docs/../secret.js",
        "/api/fhir/docs/..%2Fsecret.js",
        "/api/fhir/docs/%2E%2E/secret.js",
        "/api/fhir/docs/missing.js",
        "/api/fhir/Encounter",
        "/api/fhir/openapi.yml",
    ],
)
def test_other_paths_are_left_to_the_gateway(docs: ApiDocs, path: str) -> None:
    assert docs.answer("GET", path) is None


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_only_get_and_head_are_answered(docs: ApiDocs, method: str) -> None:
    assert docs.answer(method, "/api/fhir/openapi.yaml") is None
    assert docs.answer(method, "/api/fhir/docs") is None


def test_head_has_the_type_and_no_body(docs: ApiDocs) -> None:
    answer = docs.answer("HEAD", "/api/fhir/openapi.yaml")

    assert answer is not None and answer.status == 200
    assert ("Content-Type", "application/yaml") in answer.headers
    assert answer.body == b""
