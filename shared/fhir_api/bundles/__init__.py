"""Transaction and batch Bundles at the base URL (``POST /api/fhir``), FHIR R4 http.html#transaction.

Only the Bundle function loads this package. ``entries`` reads the Bundle and its entries,
``references`` resolves ``urn:uuid:``/``urn:oid:`` fullUrls, ``processing`` runs the entries on the
resource service and the existing interactions, ``interaction`` answers the request and audits each entry.
"""
