"""PUT /api/fhir/Encounter/{id}: the FHIR update interaction on Encounter."""

from fhir_api.api.handler import make_handler

handler = make_handler("encounter_update")
