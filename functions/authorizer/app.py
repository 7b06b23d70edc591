"""The API's TOKEN authorizer: verifies the bearer token and returns the IAM policy of its roles."""

from fhir_api.auth.authorizer import lambda_handler as handler

__all__ = ["handler"]
