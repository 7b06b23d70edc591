"""GET /api/fhir/Encounter/{id}/_history/{vid}: the FHIR vread interaction on Encounter."""

from fhir_api.api.handler import make_handler

handler = make_handler("encounter_vread")
