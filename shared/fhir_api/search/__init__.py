"""FHIR R4 search: parameter tables and query parsing (``parameters``, ``definitions``), date prefixes
(``dates``), token and string matching (``tokens``, ``strings``) and signed page tokens (``paging``).

Import the submodules directly; this package imports nothing so a Lambda pays only for what it uses.
"""
