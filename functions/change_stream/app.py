"""The DynamoDB stream of Encounters and Patients: one event per accepted version on the event bus,
one queued rest-hook delivery per matching Subscription (fhir_api.notifications)."""

from fhir_api.notifications.aws import change_stream_handler as handler

__all__ = ["handler"]
