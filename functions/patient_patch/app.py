"""PATCH /api/fhir/Patient/{id}: the FHIR patch interaction on Patient (JSON Patch)."""

from fhir_api.api.handler import make_handler

handler = make_handler("patient_patch")
