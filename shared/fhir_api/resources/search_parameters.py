"""The search parameter tables of Encounter and Patient: the one copy the code, the
CapabilityStatement, the OpenAPI file and the tests read.

Each table maps a parameter name to its ``SearchParameter`` (FHIR R4 names, types and standard
definitions); ``*_SORTS`` are the ``_sort`` values each resource accepts.

How each Encounter parameter is served (docs/data-model.md): ``subject``/``patient`` on ``subject-index``,
``status`` on ``status-index`` (sharded), anything else on ``date-index`` (sharded); ``date`` narrows
the ``periodStart`` sort key (``dates.key_bounds``) and is then matched exactly (``dates.matches``);
``class``, ``type`` and ``_lastUpdated`` filter the items read; ``identifier`` is served by the
encounter's identifier terms on its table's ``term-index`` (``resources.identifiers``); ``_id`` is a
GetItem. Patient
``identifier``, ``family``, ``given``, ``name``, ``birthdate`` and ``gender`` are served by the search
terms on ``term-index``; ``_id`` is a GetItem.
"""

from __future__ import annotations

from fhir_api.fhir import terminology
from fhir_api.resources import lifecycle
from fhir_api.search.parameters import SearchParameter, parameter_table

SPEC = "http://hl7.org/fhir/SearchParameter"
ENCOUNTER_STATUS_SYSTEM = terminology.ENCOUNTER_STATUS.system
ADMINISTRATIVE_GENDER_SYSTEM = terminology.ADMINISTRATIVE_GENDER.system
# The code lists come from the value sets (one place); the lifecycle gives the statuses their order.
ENCOUNTER_STATUSES = lifecycle.STATUS_ORDER
GENDERS = tuple(sorted(terminology.ADMINISTRATIVE_GENDER.codes))


def _id_parameter(resource_type: str) -> SearchParameter:
    return SearchParameter(
        "_id",
        "token",
        f"{resource_type}.id",
        f"The {resource_type}'s logical id; a comma means OR.",
        f"{SPEC}/Resource-id",
    )


def _last_updated_parameter(resource_type: str) -> SearchParameter:
    return SearchParameter(
        "_lastUpdated",
        "date",
        f"{resource_type}.meta.lastUpdated",
        "When the resource last changed; every date prefix (eq ne gt lt ge le sa eb ap) and precision.",
        f"{SPEC}/Resource-lastUpdated",
    )


ENCOUNTER_PARAMETERS: dict[str, SearchParameter] = parameter_table(
    SearchParameter(
        "subject",
        "reference",
        "Encounter.subject",
        "The patient the encounter is about: Patient/{id}, {id}, or its absolute URL on this server.",
        f"{SPEC}/Encounter-subject",
        modifiers=("Patient",),
        target=("Patient",),
    ),
    SearchParameter(
        "patient",
        "reference",
        "Encounter.subject.where(resolve() is Patient)",
        "The patient the encounter is about: Patient/{id}, {id}, or its absolute URL on this server.",
        f"{SPEC}/clinical-patient",
        modifiers=("Patient",),
        target=("Patient",),
    ),
    SearchParameter(
        "status",
        "token",
        "Encounter.status",
        "Encounter status (planned, arrived, triaged, in-progress, onleave, finished, cancelled, "
        "entered-in-error, unknown); a comma means OR.",
        f"{SPEC}/Encounter-status",
        codes=ENCOUNTER_STATUSES,
        system=ENCOUNTER_STATUS_SYSTEM,
    ),
    SearchParameter(
        "date",
        "date",
        "Encounter.period",
        "The encounter's period, matched as a range (an open end overlaps every later date); every "
        "prefix (eq ne gt lt ge le sa eb ap) and precision (year, month, day, time); repeats are ANDed.",
        f"{SPEC}/clinical-date",
    ),
    SearchParameter(
        "class",
        "token",
        "Encounter.class",
        "Classification of the encounter (v3 ActEncounterCode: AMB, EMER, IMP, VR...): "
        "system|code, code, |code or system|.",
        f"{SPEC}/Encounter-class",
    ),
    SearchParameter(
        "type",
        "token",
        "Encounter.type",
        "Specific type of encounter: system|code, code, |code or system|.",
        f"{SPEC}/clinical-type",
    ),
    SearchParameter(
        "identifier",
        "token",
        "Encounter.identifier",
        "An identifier of the encounter (a visit number): system|value, |value, value or system|. "
        "Visit numbers need not be unique: a conditional interaction matching several is 412.",
        f"{SPEC}/clinical-identifier",
    ),
    _id_parameter("Encounter"),
    _last_updated_parameter("Encounter"),
)

PATIENT_PARAMETERS: dict[str, SearchParameter] = parameter_table(
    SearchParameter(
        "identifier",
        "token",
        "Patient.identifier",
        "A patient identifier: system|value, |value, value or system|.",
        f"{SPEC}/Patient-identifier",
    ),
    SearchParameter(
        "family",
        "string",
        "Patient.name.family",
        "Family name: starts-with on the name or any of its words, case- and accent-insensitive "
        "(:exact for the whole name as written).",
        f"{SPEC}/individual-family",
        modifiers=("exact",),
    ),
    SearchParameter(
        "given",
        "string",
        "Patient.name.given",
        "Given name: starts-with on the name or any of its words, case- and accent-insensitive "
        "(:exact for the whole name as written).",
        f"{SPEC}/individual-given",
        modifiers=("exact",),
    ),
    SearchParameter(
        "name",
        "string",
        "Patient.name",
        "Any part of the name (family, given, prefix, suffix, text): starts-with, case- and "
        "accent-insensitive (:exact for a whole part as written).",
        f"{SPEC}/Patient-name",
        modifiers=("exact",),
    ),
    SearchParameter(
        "birthdate",
        "date",
        "Patient.birthDate",
        "Date of birth; every date prefix (eq ne gt lt ge le sa eb ap) and precision.",
        f"{SPEC}/individual-birthdate",
    ),
    SearchParameter(
        "gender",
        "token",
        "Patient.gender",
        "Administrative gender (male, female, other, unknown).",
        f"{SPEC}/individual-gender",
        codes=GENDERS,
        system=ADMINISTRATIVE_GENDER_SYSTEM,
    ),
    _id_parameter("Patient"),
    _last_updated_parameter("Patient"),
)

ENCOUNTER_SORTS: tuple[str, ...] = ("date", "-date", "_lastUpdated", "-_lastUpdated")

# The Patient parameters a chain on Encounter's subject (patient.family, subject:Patient.identifier)
# may name: those a clinic looks a patient up by, each served by the patient's search terms.
CHAINED_PATIENT_PARAMETERS = ("identifier", "name", "family", "given", "birthdate")
ENCOUNTER_CHAINS: dict[str, dict[str, SearchParameter]] = {
    "Patient": {name: PATIENT_PARAMETERS[name] for name in CHAINED_PATIENT_PARAMETERS}
}
# Encounter's references to its patient, as _include (on Encounter) and _revinclude (on Patient)
# name them: subject and patient are the same reference here.
SUBJECT_INCLUDES: tuple[str, ...] = (
    "Encounter:subject",
    "Encounter:patient",
    "Encounter:subject:Patient",
    "Encounter:patient:Patient",
)
PATIENT_SORTS: tuple[str, ...] = ()
