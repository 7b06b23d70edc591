"""GET /api/fhir/Encounter/{id}/_history: the FHIR history-instance interaction on Encounter."""

from fhir_api.api.handler import make_handler

handler = make_handler("encounter_history")
