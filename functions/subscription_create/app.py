"""POST /api/fhir/Subscription: the FHIR create interaction on Subscription (admin only)."""

from fhir_api.api.handler import make_handler

handler = make_handler("subscription_create")
