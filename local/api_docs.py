"""The API's description and a page to browse it, answered by the local gateway itself.

- ``GET /api/fhir/openapi.yaml``: openapi.yaml as it is in the repository (``application/yaml``).
- ``GET /api/fhir/docs``: a Swagger UI page that loads it; its assets under ``/api/fhir/docs/``, from
  the npm package swagger-ui-dist that ``make install`` unpacks into ``.local/swagger-ui/``.

No token is needed for either. This is the local stack only: API Gateway in AWS serves neither (there
the file is in the repository, to import into API Gateway's console or any OpenAPI tool), so none of
these paths is a route of routes.py or template.yaml.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from fhir_api.routes import API_PREFIX
from local import LOCAL_DIR, ROOT
from local.http_messages import HttpResponse

OPENAPI_FILE = ROOT / "openapi.yaml"
SWAGGER_UI_DIR = LOCAL_DIR / "swagger-ui"
OPENAPI_PATH = f"{API_PREFIX}/openapi.yaml"
DOCS_PATH = f"{API_PREFIX}/docs"
YAML_TYPE = "application/yaml"
HTML_TYPE = "text/html; charset=utf-8"
# The asset types the page loads; any other file in the folder (LICENSE, package.json) is not served.
ASSET_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}
# One file name, no folder: nothing outside the assets folder can be named.
_ASSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# The description may change while make run serves it: browsers ask again rather than reuse a copy.
_HEADERS = [("Cache-Control", "no-cache"), ("X-Content-Type-Options", "nosniff")]

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="{docs}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{docs}/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{docs}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: "{openapi}",
      dom_id: "#swagger-ui",
      deepLinking: true,
      persistAuthorization: true,
      validatorUrl: null
    }});
  </script>
</body>
</html>
"""


class ApiDocs:
    """The answers to the description's and the page's paths (None for any other path)."""

    def __init__(self, openapi_file: Path = OPENAPI_FILE, assets_dir: Path = SWAGGER_UI_DIR) -> None:
        self.openapi_file = openapi_file
        self.assets_dir = assets_dir

    def answer(self, method: str, path: str, stage_prefix: str = "") -> HttpResponse | None:
        """The answer to ``method path`` (the path without its stage prefix), or None for any other
        method or path, an unknown asset included: the gateway then routes it like any other request
        (and, as no route matches, answers 404)."""
        if method not in ("GET", "HEAD"):
            return None
        if path == OPENAPI_PATH:
            response = self._file(self.openapi_file, YAML_TYPE)
        elif path in (DOCS_PATH, f"{DOCS_PATH}/", f"{DOCS_PATH}/index.html"):
            response = self._page(stage_prefix)
        elif path.startswith(f"{DOCS_PATH}/"):
            response = self._asset(path.removeprefix(f"{DOCS_PATH}/"))
        else:
            return None
        if response is not None and method == "HEAD":
            response.body = b""
        return response

    def _page(self, stage_prefix: str) -> HttpResponse:
        if not (self.assets_dir / "swagger-ui-bundle.js").is_file():
            message = (
                f"Swagger UI is not installed ({self.assets_dir} has no swagger-ui-bundle.js); "
                "run make install, which fetches the npm package swagger-ui-dist.\n"
            )
            headers = [("Content-Type", "text/plain; charset=utf-8"), *_HEADERS]
            return HttpResponse(503, headers, message.encode("utf-8"))
        base = html.escape(stage_prefix + API_PREFIX, quote=True)
        page = PAGE.format(title="Encounter API", docs=f"{base}/docs", openapi=f"{base}/openapi.yaml")
        return HttpResponse(200, [("Content-Type", HTML_TYPE), *_HEADERS], page.encode("utf-8"))

    def _asset(self, name: str) -> HttpResponse | None:
        content_type = ASSET_TYPES.get(Path(name).suffix)
        if content_type is None or not _ASSET_NAME.fullmatch(name) or ".." in name:
            return None
        return self._file(self.assets_dir / name, content_type)

    @staticmethod
    def _file(path: Path, content_type: str) -> HttpResponse | None:
        try:
            body = path.read_bytes()
        except FileNotFoundError:
            return None
        return HttpResponse(200, [("Content-Type", content_type), *_HEADERS], body)
