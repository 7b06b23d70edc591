"""GET /api/fhir/AuditEvent: the FHIR search interaction on the audit trail (auditors and admins)."""

from fhir_api.api.handler import make_handler

handler = make_handler("audit_event_search")
