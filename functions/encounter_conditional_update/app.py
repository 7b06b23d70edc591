"""PUT /api/fhir/Encounter?identifier=…: the FHIR conditional update interaction on Encounter."""

from fhir_api.api.handler import make_handler

handler = make_handler("encounter_conditional_update")
