"""Bearer-token authorization: token verification (``tokens``), SMART scopes (``scopes``), who may call
which route (``access``), the IAM policy built from it (``policy``), the API Gateway TOKEN authorizer
(``authorizer``) and the SMART configuration document (``smart``).

Import the submodule you need; this package imports nothing itself, so the API functions that only need
``access`` or ``policy`` never load PyJWT.
"""
