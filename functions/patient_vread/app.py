"""GET /api/fhir/Patient/{id}/_history/{vid}: the FHIR vread interaction on Patient."""

from fhir_api.api.handler import make_handler

handler = make_handler("patient_vread")
