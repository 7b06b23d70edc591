"""GET /api/fhir/Encounter: the FHIR search-type interaction on Encounter."""

from fhir_api.api.handler import make_handler

handler = make_handler("encounter_search")
