"""POST /api/fhir/Encounter/_search: the FHIR search-type interaction on Encounter, by form body."""

from fhir_api.api.handler import make_handler

handler = make_handler("encounter_search_post")
