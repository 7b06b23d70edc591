"""Bearer-token authorization: token verification (``tokens``), the IAM policy built from the role table
(``policy``) and the API Gateway TOKEN authorizer (``authorizer``).

Import the submodule you need; this package imports nothing itself, so the API functions that only need
``policy`` never load PyJWT.
"""
