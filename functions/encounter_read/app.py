"""GET /api/fhir/Encounter/{id}: the FHIR read interaction on Encounter."""

from fhir_api.api.handler import make_handler

handler = make_handler("encounter_read")
