"""Value sets this server checks: the REQUIRED bindings of FHIR R4 Encounter and Patient.

FHIR release R4 (4.0.1); the Encounter and Patient definitions are the same in R4B. fhir.resources
types a bound element as a plain ``code`` and does not check it, so the codes live here.

Public API
----------
``ValueSet(name, url, system, codes)``
    A frozen value set: canonical URL, the code system its codes come from, the codes (frozenset).
``BINDINGS: Mapping[str, ValueSet]``
    Element definition path (``"Encounter.status"``, ``"Identifier.use"``) -> its required value set.
``binding_for(definition_path: str) -> ValueSet | None``
    The required value set bound to an element, if any.
``is_mime_type(value: str) -> bool``
    ``Attachment.contentType`` is bound (required) to BCP 13 MIME types, a grammar, not a list.

``ACT_ENCOUNTER_CODES`` (v3 ActEncounterCode) is not a required binding of R4 (``Encounter.class`` is
extensible); this server applies it as a business rule when the coding's system is ``V3_ACT_CODE``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


@dataclass(frozen=True)
class ValueSet:
    """A value set: its canonical URL, the code system of its codes, and the codes."""

    name: str
    url: str
    system: str
    codes: frozenset[str]

    def __contains__(self, code: object) -> bool:
        return code in self.codes


def _hl7(name: str, value_set: str, codes: str, system: str | None = None) -> ValueSet:
    return ValueSet(
        name=name,
        url=f"http://hl7.org/fhir/ValueSet/{value_set}",
        system=system or f"http://hl7.org/fhir/{value_set}",
        codes=frozenset(codes.split()),
    )


ENCOUNTER_STATUS = _hl7(
    "EncounterStatus",
    "encounter-status",
    "planned arrived triaged in-progress onleave finished cancelled entered-in-error unknown",
)
ENCOUNTER_LOCATION_STATUS = _hl7(
    "EncounterLocationStatus", "encounter-location-status", "planned active reserved completed"
)
ADMINISTRATIVE_GENDER = _hl7("AdministrativeGender", "administrative-gender", "male female other unknown")
IDENTIFIER_USE = _hl7("IdentifierUse", "identifier-use", "usual official temp secondary old")
NAME_USE = _hl7("NameUse", "name-use", "usual official temp nickname anonymous old maiden")
CONTACT_POINT_SYSTEM = _hl7(
    "ContactPointSystem", "contact-point-system", "phone fax email pager url sms other"
)
CONTACT_POINT_USE = _hl7("ContactPointUse", "contact-point-use", "home work temp old mobile")
ADDRESS_USE = _hl7("AddressUse", "address-use", "home work temp old billing")
ADDRESS_TYPE = _hl7("AddressType", "address-type", "postal physical both")
LINK_TYPE = _hl7("LinkType", "link-type", "replaced-by replaces refer seealso")
NARRATIVE_STATUS = _hl7("NarrativeStatus", "narrative-status", "generated extensions additional empty")
QUANTITY_COMPARATOR = _hl7("QuantityComparator", "quantity-comparator", "< <= >= >")

ACT_ENCOUNTER_CODES = ValueSet(
    name="ActEncounterCode",
    url="http://terminology.hl7.org/ValueSet/v3-ActEncounterCode",
    system=V3_ACT_CODE,
    codes=frozenset({"AMB", "EMER", "FLD", "HH", "IMP", "ACUTE", "NONAC", "OBSENC", "PRENC", "SS", "VR"}),
)

# Keyed by element definition path: a resource's own elements (and its backbone elements) by the
# resource's path, data types by the data type's name, so a binding applies wherever the type is used.
BINDINGS: Mapping[str, ValueSet] = MappingProxyType(
    {
        "Encounter.status": ENCOUNTER_STATUS,
        "Encounter.statusHistory.status": ENCOUNTER_STATUS,
        "Encounter.location.status": ENCOUNTER_LOCATION_STATUS,
        "Patient.gender": ADMINISTRATIVE_GENDER,
        "Patient.contact.gender": ADMINISTRATIVE_GENDER,
        "Patient.link.type": LINK_TYPE,
        "Identifier.use": IDENTIFIER_USE,
        "HumanName.use": NAME_USE,
        "ContactPoint.system": CONTACT_POINT_SYSTEM,
        "ContactPoint.use": CONTACT_POINT_USE,
        "Address.use": ADDRESS_USE,
        "Address.type": ADDRESS_TYPE,
        "Narrative.status": NARRATIVE_STATUS,
        # Duration (Encounter.length), Age, Count and Distance are Quantity profiles.
        "Quantity.comparator": QUANTITY_COMPARATOR,
        "Duration.comparator": QUANTITY_COMPARATOR,
        "Age.comparator": QUANTITY_COMPARATOR,
        "Count.comparator": QUANTITY_COMPARATOR,
        "Distance.comparator": QUANTITY_COMPARATOR,
    }
)

# RFC 6838 type/subtype names, then optional parameters (``text/plain; charset=utf-8``).
_MIME_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
    r"(\s*;\s*[A-Za-z0-9!#$&^_.+-]+=(\"[^\"]*\"|[A-Za-z0-9!#$&^_.+-]+))*"
)


def binding_for(definition_path: str) -> ValueSet | None:
    """Return the required value set bound to the element at ``definition_path``, if any."""
    return BINDINGS.get(definition_path)


def is_mime_type(value: str) -> bool:
    """Say whether ``value`` is a BCP 13 MIME type (the required binding of ``Attachment.contentType``)."""
    return _MIME_TYPE.fullmatch(value) is not None


# FHIR R4's restful-interaction codes (http://hl7.org/fhir/restful-interaction), the type-level ones
# first in the order the CapabilityStatement lists them.
TYPE_INTERACTIONS = (
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
)
RESTFUL_INTERACTIONS = frozenset(
    {*TYPE_INTERACTIONS, "capabilities", "transaction", "batch", "operation", "search-system"}
    | {"history-system"}
)
