"""POST /api/fhir/Encounter: the FHIR create interaction on Encounter."""

from fhir_api.api.handler import make_handler

handler = make_handler("encounter_create")
