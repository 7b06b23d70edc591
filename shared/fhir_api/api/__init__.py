"""HTTP in FHIR's terms: the Lambda handler, requests and responses, the interactions, the
CapabilityStatement and the one map from domain errors to OperationOutcome answers."""
