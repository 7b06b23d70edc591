"""GET /api/fhir/Patient/{id}/_history: the FHIR history-instance interaction on Patient."""

from fhir_api.api.handler import make_handler

handler = make_handler("patient_history")
