"""GET /api/fhir/Subscription/{id}: the FHIR read interaction on Subscription (admin only)."""

from fhir_api.api.handler import make_handler

handler = make_handler("subscription_read")
