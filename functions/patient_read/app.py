"""GET /api/fhir/Patient/{id}: the FHIR read interaction on Patient."""

from fhir_api.api.handler import make_handler

handler = make_handler("patient_read")
