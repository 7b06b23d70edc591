"""GET /api/fhir/metadata: the FHIR capabilities interaction (CapabilityStatement, no token)."""

from fhir_api.api.handler import make_handler

handler = make_handler("metadata")
