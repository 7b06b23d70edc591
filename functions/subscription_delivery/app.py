"""The delivery queue: one rest-hook POST per message, retried with backoff (fhir_api.notifications)."""

from fhir_api.notifications.aws import delivery_handler as handler

__all__ = ["handler"]
