"""POST /api/fhir: transaction and batch Bundles at the base URL."""

from fhir_api.api.handler import make_handler

handler = make_handler("bundle")
