"""PATCH /api/fhir/Encounter/{id}: the FHIR patch interaction on Encounter (JSON Patch)."""

from fhir_api.api.handler import make_handler

handler = make_handler("encounter_patch")
