"""POST /api/fhir/Patient: the FHIR create interaction on Patient."""

from fhir_api.api.handler import make_handler

handler = make_handler("patient_create")
