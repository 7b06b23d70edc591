"""PUT /api/fhir/Patient/{id}: the FHIR update interaction on Patient."""

from fhir_api.api.handler import make_handler

handler = make_handler("patient_update")
