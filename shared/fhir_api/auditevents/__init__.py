"""The audit trail as FHIR data: every request becomes one R4 AuditEvent that auditors can search.

- ``compartment``: whose (which patient's) data a resource is, for the audit record of a request;
- ``events``: an audit record (a function's, or an API Gateway access-log line) as a FHIR AuditEvent
  following the IHE Basic Audit Log Patterns (BALP) for RESTful interactions, and its search terms;
- ``store``: the append-only AuditEvents table (the only code here that calls DynamoDB);
- ``recorder``: the Lambda function that CloudWatch Logs subscriptions feed with those lines;
- ``search`` and ``interactions``: ``GET /AuditEvent`` and ``GET /AuditEvent/{id}``.
"""
