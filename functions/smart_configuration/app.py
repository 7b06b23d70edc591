"""GET /api/fhir/.well-known/smart-configuration: the SMART on FHIR configuration (no token)."""

from fhir_api.api.handler import make_handler

handler = make_handler("smart_configuration")
