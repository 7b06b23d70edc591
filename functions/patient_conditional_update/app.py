"""PUT /api/fhir/Patient?identifier=…: the FHIR conditional update interaction on Patient."""

from fhir_api.api.handler import make_handler

handler = make_handler("patient_conditional_update")
