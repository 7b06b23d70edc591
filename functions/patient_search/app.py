"""GET /api/fhir/Patient: the FHIR search-type interaction on Patient."""

from fhir_api.api.handler import make_handler

handler = make_handler("patient_search")
