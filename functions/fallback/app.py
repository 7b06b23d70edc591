"""Every other method or path under /api/fhir: 405 with an Allow header on a known path, 404 elsewhere."""

from fhir_api.api.handler import make_handler

handler = make_handler("fallback")
