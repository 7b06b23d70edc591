"""POST /api/fhir/Encounter/$validate: the FHIR $validate operation on Encounter."""

from fhir_api.api.handler import make_handler

handler = make_handler("encounter_validate")
