"""The Encounter API's shared Lambda layer: FHIR R4 (4.0.1) Encounter and Patient over API Gateway.

Every function imports this one package; see README.md ("Architecture") for how its modules fit.
"""

FHIR_VERSION = "4.0.1"
