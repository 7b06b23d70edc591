"""DELETE /api/fhir/Encounter/{id}: the FHIR delete interaction on Encounter (admins only)."""

from fhir_api.api.handler import make_handler

handler = make_handler("encounter_delete")
