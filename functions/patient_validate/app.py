"""POST /api/fhir/Patient/$validate: the FHIR $validate operation on Patient."""

from fhir_api.api.handler import make_handler

handler = make_handler("patient_validate")
