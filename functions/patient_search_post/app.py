"""POST /api/fhir/Patient/_search: the FHIR search-type interaction on Patient, by form body."""

from fhir_api.api.handler import make_handler

handler = make_handler("patient_search_post")
