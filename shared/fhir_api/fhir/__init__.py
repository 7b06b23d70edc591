"""FHIR R4 as data, with no HTTP and no DynamoDB: exact JSON, dates and instants, the structure
walk over the R4 models, narratives."""
