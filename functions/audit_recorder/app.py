"""The audit recorder: CloudWatch Logs subscriptions deliver the audit lines, it stores AuditEvents."""

from fhir_api.auditevents.recorder import handler

__all__ = ["handler"]
