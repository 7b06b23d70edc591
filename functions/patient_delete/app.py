"""DELETE /api/fhir/Patient/{id}: the FHIR delete interaction on Patient (admins only)."""

from fhir_api.api.handler import make_handler

handler = make_handler("patient_delete")
