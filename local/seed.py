"""``make seed``: load a realistic sample into a running ``make run`` through its HTTP API.

Six patients, and encounters of every class (ambulatory, emergency, inpatient, virtual) in every
status of the lifecycle, several of them walked there through their history (created planned, then
updated to arrived, in-progress, finished), so ``_history`` has something to show.

Running it again changes nothing: a patient is created with ``If-None-Exist`` on its MRN, and an
encounter carries a visit number that is looked for among its patient's encounters first (an
Encounter has no conditional create here). An encounter found part-way through its history is moved
on from where it stands. The token is minted for ``admin`` by the local issuer.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from local import LocalError, issuer

MRN_SYSTEM = "urn:oid:1.2.36.146.595.217.0.1"
VISIT_SYSTEM = "urn:oid:1.2.36.146.595.217.0.2"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SNOMED = "http://snomed.info/sct"
SEED_SUB = "seed"
TIMEOUT_SECONDS = 30
PAGE_SIZE = 100

CLASSES = {
    "AMB": "ambulatory",
    "EMER": "emergency",
    "IMP": "inpatient encounter",
    "VR": "virtual",
}
# A usual encounter type for each class (SNOMED CT procedures).
TYPES = {
    "AMB": ("185349003", "Encounter for check up"),
    "EMER": ("50849002", "Emergency room admission"),
    "IMP": ("32485007", "Hospital admission"),
    "VR": ("448337001", "Telemedicine consultation with patient"),
}


@dataclass(frozen=True)
class SamplePatient:
    """One patient of the sample; ``mrn`` is its identifier value in ``MRN_SYSTEM``."""

    mrn: str
    family: str
    given: tuple[str, ...]
    gender: str
    birth_date: str

    def document(self) -> dict[str, Any]:
        """The Patient resource."""
        return {
            "resourceType": "Patient",
            "identifier": [{"use": "usual", "system": MRN_SYSTEM, "value": self.mrn}],
            "active": True,
            "name": [{"use": "official", "family": self.family, "given": list(self.given)}],
            "gender": self.gender,
            "birthDate": self.birth_date,
        }


@dataclass(frozen=True)
class SampleEncounter:
    """One encounter: its visit number, patient (MRN), class, when it starts, and the statuses it goes
    through, each with the time it was recorded. It is created in the first status and updated into
    each later one (statusHistory keeps the earlier ones); the period ends when it is ``finished``."""

    visit: str
    mrn: str
    code: str
    start: str
    steps: tuple[tuple[str, str], ...]
    end: str | None = None
    reason: tuple[str, str] | None = None

    @property
    def statuses(self) -> list[str]:
        """The statuses in order; the last is where the encounter ends up."""
        return [status for status, _ in self.steps]

    def document(self, patient_id: str, step: int) -> dict[str, Any]:
        """The Encounter as it is at ``step`` (an index into ``steps``)."""
        status = self.steps[step][0]
        type_code, type_display = TYPES[self.code]
        period: dict[str, str] = {"start": self.start}
        if status == "finished" and self.end:
            period["end"] = self.end
        document: dict[str, Any] = {
            "resourceType": "Encounter",
            "identifier": [
                {
                    "use": "official",
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                "code": "VN",
                                "display": "Visit number",
                            }
                        ]
                    },
                    "system": VISIT_SYSTEM,
                    "value": self.visit,
                }
            ],
            "status": status,
            "class": {"system": V3_ACT_CODE, "code": self.code, "display": CLASSES[self.code]},
            "type": [{"coding": [{"system": SNOMED, "code": type_code, "display": type_display}]}],
            "subject": {"reference": f"Patient/{patient_id}"},
            "period": period,
        }
        history = [
            {"status": self.steps[i][0], "period": {"start": self.steps[i][1], "end": self.steps[i + 1][1]}}
            for i in range(step)
        ]
        if history:
            document["statusHistory"] = history
        if self.reason:
            document["reasonCode"] = [
                {"coding": [{"system": SNOMED, "code": self.reason[0], "display": self.reason[1]}]}
            ]
        return document


PATIENTS: tuple[SamplePatient, ...] = (
    SamplePatient("MRN-100001", "Hart", ("Amelia", "Rose"), "female", "1958-04-12"),
    SamplePatient("MRN-100002", "Mehta", ("Rahul",), "male", "1983-09-30"),
    SamplePatient("MRN-100003", "García", ("Sofía",), "female", "1991-01-22"),
    SamplePatient("MRN-100004", "Becker", ("Jonas",), "male", "1947-11-05"),
    SamplePatient("MRN-100005", "Chen", ("Mei", "Lin"), "female", "2016-06-18"),
    SamplePatient("MRN-100006", "Morgan", ("Alex",), "other", "1975-02-14"),
)

ENCOUNTERS: tuple[SampleEncounter, ...] = (
    SampleEncounter(
        "V-24-0001",
        "MRN-100001",
        "AMB",
        "2024-03-15T09:04:00Z",
        (
            ("planned", "2024-03-01T10:12:00Z"),
            ("arrived", "2024-03-15T08:52:00Z"),
            ("in-progress", "2024-03-15T09:04:00Z"),
            ("finished", "2024-03-15T09:31:00Z"),
        ),
        end="2024-03-15T09:31:00Z",
        reason=("390906007", "Follow-up encounter"),
    ),
    SampleEncounter(
        "V-24-0002", "MRN-100001", "VR", "2027-01-12T14:00:00Z", (("planned", "2024-11-02T09:40:00Z"),)
    ),
    SampleEncounter(
        "V-24-0003",
        "MRN-100002",
        "EMER",
        "2024-05-02T22:41:00Z",
        (
            ("arrived", "2024-05-02T22:41:00Z"),
            ("triaged", "2024-05-02T22:49:00Z"),
            ("in-progress", "2024-05-02T23:20:00Z"),
        ),
        reason=("29857009", "Chest pain"),
    ),
    SampleEncounter(
        "V-24-0004",
        "MRN-100002",
        "AMB",
        "2024-06-10T10:30:00Z",
        (("planned", "2024-05-28T11:00:00Z"), ("cancelled", "2024-06-09T16:05:00Z")),
    ),
    SampleEncounter(
        "V-24-0005",
        "MRN-100003",
        "IMP",
        "2024-07-01T07:30:00Z",
        (
            ("planned", "2024-06-20T13:00:00Z"),
            ("arrived", "2024-07-01T06:55:00Z"),
            ("in-progress", "2024-07-01T07:30:00Z"),
            ("onleave", "2024-07-04T10:00:00Z"),
        ),
        reason=("386661006", "Fever"),
    ),
    SampleEncounter(
        "V-24-0006",
        "MRN-100003",
        "AMB",
        "2024-07-20T11:00:00Z",
        (("finished", "2024-07-20T11:25:00Z"), ("entered-in-error", "2024-07-20T15:12:00Z")),
        end="2024-07-20T11:20:00Z",
    ),
    SampleEncounter(
        "V-24-0007",
        "MRN-100004",
        "IMP",
        "2024-02-01T13:10:00Z",
        (
            ("arrived", "2024-02-01T13:10:00Z"),
            ("in-progress", "2024-02-01T14:00:00Z"),
            ("finished", "2024-02-06T10:00:00Z"),
        ),
        end="2024-02-06T10:00:00Z",
        reason=("233604007", "Pneumonia"),
    ),
    SampleEncounter(
        "V-24-0008",
        "MRN-100004",
        "EMER",
        "2024-09-14T03:12:00Z",
        (("arrived", "2024-09-14T03:12:00Z"), ("triaged", "2024-09-14T03:20:00Z")),
        reason=("161891005", "Backache"),
    ),
    SampleEncounter(
        "V-24-0009",
        "MRN-100005",
        "VR",
        "2024-10-03T16:00:00Z",
        (("finished", "2024-10-03T16:20:00Z"),),
        end="2024-10-03T16:18:00Z",
        reason=("49727002", "Cough"),
    ),
    SampleEncounter(
        "V-24-0010",
        "MRN-100005",
        "AMB",
        "2024-11-20T09:15:00Z",
        (("planned", "2024-11-12T08:30:00Z"), ("arrived", "2024-11-20T09:05:00Z")),
    ),
    # Migrated from an older system that did not record the state.
    SampleEncounter(
        "V-19-0417", "MRN-100006", "AMB", "2019-05-08T10:00:00Z", (("unknown", "2020-01-15T00:00:00Z"),)
    ),
    SampleEncounter(
        "V-24-0011",
        "MRN-100006",
        "EMER",
        "2024-12-24T19:02:00Z",
        (
            ("arrived", "2024-12-24T19:02:00Z"),
            ("triaged", "2024-12-24T19:10:00Z"),
            ("in-progress", "2024-12-24T19:45:00Z"),
            ("finished", "2024-12-24T23:30:00Z"),
        ),
        end="2024-12-24T23:30:00Z",
        reason=("125605004", "Fracture of bone"),
    ),
    SampleEncounter(
        "V-24-0012", "MRN-100006", "IMP", "2027-02-03T08:00:00Z", (("planned", "2024-12-30T12:00:00Z"),)
    ),
)


@dataclass
class SeedReport:
    """What a run did."""

    patients_created: int = 0
    patients_found: int = 0
    encounters_created: int = 0
    encounters_found: int = 0
    updates: int = 0
    patient_ids: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the terminal."""
        return (
            f"patients: {self.patients_created} created, {self.patients_found} already there; "
            f"encounters: {self.encounters_created} created, {self.encounters_found} already there; "
            f"{self.updates} status updates"
        )


class FhirClient:
    """The few FHIR calls the seed makes, with one admin token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    def call(
        self,
        method: str,
        path_or_url: str,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """(status, headers, JSON body) of one request; LocalError when nothing answers."""
        url = path_or_url if path_or_url.startswith("http") else f"{self.base_url}/{path_or_url}"
        request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/fhir+json")
        if body is not None:
            request.add_header("Content-Type", "application/fhir+json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                return response.status, dict(response.headers), json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            text = error.read()
            try:
                return error.code, dict(error.headers), json.loads(text or b"{}")
            except ValueError:
                return error.code, dict(error.headers), {"diagnostics": text.decode(errors="replace")}
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            raise LocalError(
                f"nothing answers at {self.base_url} ({reason}); start the API with make run, "
                "or pass the PORT it runs on: make seed PORT=<port>"
            ) from None

    def expect(
        self, expected: set[int], method: str, path: str, **kwargs: Any
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """The headers and body of a call that must answer one of ``expected``."""
        status, headers, body = self.call(method, path, **kwargs)
        if status not in expected:
            issues = "; ".join(str(i.get("diagnostics") or i.get("code")) for i in body.get("issue") or [])
            raise LocalError(
                f"{method} {path} answered {status}: {issues or body}; is this the Encounter API?"
            )
        return headers, body

    def search(self, path: str) -> list[dict[str, Any]]:
        """Every resource of a search, following its ``next`` links."""
        found: list[dict[str, Any]] = []
        next_url: str | None = path
        while next_url:
            _, bundle = self.expect({200}, "GET", next_url)
            found.extend(entry["resource"] for entry in bundle.get("entry") or [])
            next_url = next(
                (link["url"] for link in bundle.get("link") or [] if link["relation"] == "next"), None
            )
        return found


def visit_number(encounter: dict[str, Any]) -> str | None:
    """The encounter's visit number (its identifier in ``VISIT_SYSTEM``), if it has one."""
    for identifier in encounter.get("identifier") or []:
        if identifier.get("system") == VISIT_SYSTEM:
            return str(identifier.get("value"))
    return None


def seed_patients(client: FhirClient, report: SeedReport) -> None:
    """Create each sample patient unless one with its MRN exists (If-None-Exist)."""
    for patient in PATIENTS:
        headers = {"If-None-Exist": f"identifier={MRN_SYSTEM}|{patient.mrn}"}
        status, _, body = client.call("POST", "Patient", body=patient.document(), headers=headers)
        if status not in (200, 201):
            raise LocalError(f"POST Patient {patient.mrn} answered {status}: {body}")
        report.patient_ids[patient.mrn] = body["id"]
        if status == 201:
            report.patients_created += 1
        else:
            report.patients_found += 1


def seed_encounters(client: FhirClient, report: SeedReport) -> None:
    """Create each sample encounter its patient does not have yet (by visit number), then walk it
    through the rest of its statuses."""
    for mrn, patient_id in report.patient_ids.items():
        existing = {
            visit_number(encounter): encounter
            for encounter in client.search(f"Encounter?subject=Patient/{patient_id}&_count={PAGE_SIZE}")
        }
        for sample in (e for e in ENCOUNTERS if e.mrn == mrn):
            current = existing.get(sample.visit)
            if current is None:
                _, current = client.expect({201}, "POST", "Encounter", body=sample.document(patient_id, 0))
                report.encounters_created += 1
            else:
                report.encounters_found += 1
            statuses = sample.statuses
            reached = (
                statuses.index(current["status"]) if current["status"] in statuses else len(statuses) - 1
            )
            for step in range(reached + 1, len(statuses)):
                document = {**sample.document(patient_id, step), "id": current["id"]}
                version = current["meta"]["versionId"]
                _, current = client.expect(
                    {200},
                    "PUT",
                    f"Encounter/{current['id']}",
                    body=document,
                    headers={"If-Match": f'W/"{version}"'},
                )
                report.updates += 1


def seed(base_url: str) -> SeedReport:
    """Load the sample into the API at ``base_url``; safe to repeat."""
    client = FhirClient(base_url, issuer.mint("admin", SEED_SUB))
    report = SeedReport()
    seed_patients(client, report)
    seed_encounters(client, report)
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m local.seed [--port 3000] [--host 127.0.0.1]``"""
    parser = argparse.ArgumentParser(prog="python -m local.seed", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3000, help="the port of make run (default 3000)")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    base_url = f"http://{args.host}:{args.port}/api/fhir"
    try:
        report = seed(base_url)
    except LocalError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    sys.stdout.write(f"{report.summary()} ({base_url})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
