"""Chained parameters, _include/_revinclude, _summary/_elements and POST _search, through the handlers
on DynamoDB Local."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from handler_calls import Answer, call, create_encounter, create_patient, ids_of, next_link, search

from fhir_api.resources import service as service_module
from fhir_api.settings import reset_settings
from tests._logs import captured_logs

pytestmark = pytest.mark.usefixtures("ddb_tables")

MRN = "urn:oid:1.2.36.146.595.217.0.1"
SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _mrn(value: str) -> list[dict[str, str]]:
    return [{"system": MRN, "value": value}]


@pytest.fixture
def clinic() -> dict[str, Any]:
    """Three patients (two Chalmers, one Okafor) and their encounters at known times."""
    peter = create_patient("Chalmers", identifier=_mrn("MRN-1"), birthDate="1974-12-25")
    anna = create_patient("Chalmers", identifier=_mrn("MRN-2"), birthDate="1990-05-01")
    ada = create_patient("Okafor", identifier=_mrn("MRN-3"), birthDate="1974-12-25")
    made: dict[str, Any] = {"peter": peter, "anna": anna, "ada": ada}
    for name, patient, start in (
        ("p1", peter, "2024-01-10T09:00:00Z"),
        ("p2", peter, "2024-03-10T09:00:00Z"),
        ("a1", anna, "2024-02-10T09:00:00Z"),
        ("o1", ada, "2024-02-20T09:00:00Z"),
    ):
        made[name] = create_encounter(patient, period={"start": start, "end": start[:11] + "10:00:00Z"})["id"]
    return made


def _ok(answer: Answer) -> dict[str, Any]:
    assert answer.status == 200, answer.text
    return dict(answer.body)


def _follow(answer: Answer, resource_type: str) -> list[dict[str, Any]]:
    """Every page of a search, following next links by GET."""
    pages = [_ok(answer)]
    while link := next_link(pages[-1]):
        query = parse_qs(urlsplit(link).query)
        pages.append(
            _ok(call(f"{resource_type.lower()}_search", "GET", f"/api/fhir/{resource_type}", query=query))
        )
    return pages


def _modes(bundle: dict[str, Any]) -> list[tuple[str, str]]:
    return [(entry["resource"]["resourceType"], entry["search"]["mode"]) for entry in bundle.get("entry", [])]


def _post_search(resource_type: str, form: dict[str, str] | str, **kwargs: Any) -> Answer:
    body = form if isinstance(form, str) else urlencode(form)
    return call(
        f"{resource_type.lower()}_search_post",
        "POST",
        f"/api/fhir/{resource_type}/_search",
        raw_body=body,
        headers=kwargs.pop("headers", FORM),
        **kwargs,
    )


# -- chains ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameter", "value", "expected"),
    [
        ("patient.family", "chalm", {"p1", "p2", "a1"}),
        ("patient.name", "okafor", {"o1"}),
        ("patient.given", "peter", {"p1", "p2", "a1", "o1"}),
        ("patient.identifier", f"{MRN}|MRN-2", {"a1"}),
        ("subject.identifier", "MRN-3", {"o1"}),
        ("subject:Patient.identifier", f"{MRN}|MRN-1", {"p1", "p2"}),
        ("patient.birthdate", "1974-12-25", {"p1", "p2", "o1"}),
        ("patient.family:exact", "Chalmers", {"p1", "p2", "a1"}),
    ],
)
def test_a_chain_finds_the_encounters_of_the_patients_it_names(
    clinic: dict[str, Any], parameter: str, value: str, expected: set[str]
) -> None:
    # When encounters are searched by a criterion on their patient
    bundle = _ok(search("Encounter", **{parameter: value}))
    # Then exactly the encounters of the patients that meet it are found, in date order
    assert set(ids_of(bundle)) == {clinic[name] for name in expected}
    starts = [entry["resource"]["period"]["start"] for entry in bundle["entry"]]
    assert starts == sorted(starts)
    # And the self link keeps the chain
    assert parameter.replace("|", "%7C") in bundle["link"][0]["url"] or parameter in bundle["link"][0]["url"]


def test_chains_and_other_criteria_are_anded(clinic: dict[str, Any]) -> None:
    both = search("Encounter", **{"patient.family": "chalmers", "patient.birthdate": "1974-12-25"})
    assert set(ids_of(_ok(both))) == {clinic["p1"], clinic["p2"]}
    dated = search("Encounter", **{"patient.family": "chalmers", "date": "ge2024-02-01"})
    assert set(ids_of(_ok(dated))) == {clinic["p2"], clinic["a1"]}
    other_subject = search("Encounter", **{"patient.family": "chalmers", "subject": clinic["ada"]})
    assert ids_of(_ok(other_subject)) == []


def test_a_chain_that_finds_no_patient_finds_nothing(clinic: dict[str, Any]) -> None:
    bundle = _ok(search("Encounter", **{"patient.identifier": f"{MRN}|MRN-404"}))
    assert (bundle.get("entry"), bundle["total"]) == (None, 0)


def test_a_chained_search_pages_every_match_once_in_order(clinic: dict[str, Any]) -> None:
    # Given a chain matching three encounters, searched one per page
    pages = _follow(search("Encounter", **{"patient.family": "chalmers", "_count": "1"}), "Encounter")
    # Then following the next links gives each once, in date order
    found = [entry["resource"] for page in pages for entry in page.get("entry", [])]
    assert [resource["id"] for resource in found] == [clinic["p1"], clinic["a1"], clinic["p2"]]


def test_a_page_token_of_a_chain_does_not_serve_when_the_chain_finds_other_patients(
    clinic: dict[str, Any],
) -> None:
    # Given the first page of a chained search
    first = _ok(search("Encounter", **{"patient.family": "chalmers", "_count": "1"}))
    link = next_link(first)
    assert link is not None
    # When a new patient matching the chain arrives before the next page is read
    create_encounter(create_patient("Chalmers"), period={"start": "2024-01-01T00:00:00Z"})
    query = parse_qs(urlsplit(link).query)
    answer = call("encounter_search", "GET", "/api/fhir/Encounter", query=query)
    # Then the old token is refused (its cursors were for the other patients), never a wrong page
    assert answer.status == 400
    assert "page token" in answer.body["issue"][0]["diagnostics"]


def test_a_chain_matching_too_many_patients_is_too_costly(
    clinic: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "MAX_CHAINED_MATCHES", 2)
    answer = search("Encounter", **{"patient.given": "peter"})
    assert answer.status == 400
    issue = answer.body["issue"][0]
    assert (issue["code"], issue["expression"]) == ("too-costly", ["patient.given"])
    assert "narrow it" in issue["diagnostics"]


@pytest.mark.parametrize(
    "parameter", ["patient.gender", "patient.organization.name", "class.code", "subject:Group.name"]
)
def test_other_chains_are_refused_naming_them(clinic: dict[str, Any], parameter: str) -> None:
    answer = search("Encounter", **{parameter: "x"})
    assert answer.status == 400, answer.body
    issue = answer.body["issue"][0]
    assert issue["expression"] == [parameter]
    assert "patient.identifier" in issue["diagnostics"]


# -- _include / _revinclude ------------------------------------------------------------------------


@pytest.mark.parametrize("include", ["Encounter:subject", "Encounter:patient", "Encounter:subject:Patient"])
def test_include_brings_each_patient_once(clinic: dict[str, Any], include: str) -> None:
    bundle = _ok(search("Encounter", **{"patient.family": "chalmers", "_include": include}))
    # Then the matches come first, then each of their patients once, as include, not counted
    assert _modes(bundle) == [("Encounter", "match")] * 3 + [("Patient", "include")] * 2
    patients = [entry["resource"]["id"] for entry in bundle["entry"][3:]]
    assert sorted(patients) == sorted([clinic["peter"], clinic["anna"]])
    assert bundle["total"] == 3
    assert f"_include={include}" in bundle["link"][0]["url"]


def test_revinclude_brings_the_encounters_of_the_patients(clinic: dict[str, Any]) -> None:
    bundle = _ok(search("Patient", family="chalmers", _revinclude="Encounter:subject"))
    assert _modes(bundle) == [("Patient", "match")] * 2 + [("Encounter", "include")] * 3
    included = {entry["resource"]["id"] for entry in bundle["entry"] if entry["search"]["mode"] == "include"}
    assert included == {clinic["p1"], clinic["p2"], clinic["a1"]}
    assert bundle["total"] == 2


def test_revinclude_says_when_it_leaves_encounters_out(
    clinic: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "MAX_REVINCLUDED", 1)
    bundle = _ok(search("Patient", identifier=f"{MRN}|MRN-1", _revinclude="Encounter:patient"))
    # Then one of the patient's two encounters is included and an outcome entry warns that more exist
    assert _modes(bundle) == [("Patient", "match"), ("Encounter", "include"), ("OperationOutcome", "outcome")]
    [issue] = bundle["entry"][-1]["resource"]["issue"]
    assert (issue["severity"], issue["code"]) == ("warning", "incomplete")
    assert "Encounter?subject=" in issue["diagnostics"]


@pytest.mark.parametrize(
    ("resource_type", "params"),
    [
        ("Encounter", {"_include": "*"}),
        ("Encounter", {"_include": "Encounter:participant"}),
        ("Encounter", {"_revinclude": "Encounter:subject"}),
        ("Patient", {"_include": "Encounter:subject"}),
        ("Patient", {"_revinclude": "Observation:subject"}),
        ("Encounter", {"_include:iterate": "Encounter:subject"}),
    ],
)
def test_other_includes_are_refused(
    clinic: dict[str, Any], resource_type: str, params: dict[str, str]
) -> None:
    answer = search(resource_type, **params)
    assert answer.status == 400
    issue = answer.body["issue"][0]
    assert issue["expression"] == list(params)


def test_the_audit_record_names_the_included_patients(
    clinic: dict[str, Any], caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    with captured_logs(caplog, capsys) as logs:
        _ok(search("Encounter", _id=clinic["p1"], _include="Encounter:subject"))
        _ok(search("Patient", _id=clinic["ada"], _revinclude="Encounter:subject"))
    first, second = logs.audit_records()[-2:]
    assert first["patients"] == [clinic["peter"]]
    assert second["patients"] == [clinic["ada"]]
    assert "_include" in first["query"]


# -- _summary / _elements --------------------------------------------------------------------------


def test_summary_true_keeps_the_summary_elements_and_tags_them(clinic: dict[str, Any]) -> None:
    bundle = _ok(search("Encounter", _id=clinic["p1"], _summary="true"))
    resource = bundle["entry"][0]["resource"]
    # Then the summary elements stay, the others (period, text) go, and the resource says so
    assert {"resourceType", "id", "meta", "status", "class", "subject"} <= set(resource)
    assert "period" not in resource
    assert SUBSETTED in resource["meta"]["tag"]
    assert resource["meta"]["versionId"] == "1"


def test_summary_text_data_and_elements(clinic: dict[str, Any]) -> None:
    text = _ok(search("Encounter", _id=clinic["p1"], _summary="text"))["entry"][0]["resource"]
    assert set(text) <= {"resourceType", "id", "meta", "text", "status", "class"}
    data = _ok(search("Encounter", _id=clinic["p1"], _summary="data"))["entry"][0]["resource"]
    assert "text" not in data and "period" in data and SUBSETTED in data["meta"]["tag"]
    chosen = _ok(search("Encounter", _id=clinic["p1"], _elements="period,subject"))["entry"][0]["resource"]
    # Then the elements named stay, with the mandatory ones (status, class) and id, meta
    assert set(chosen) == {"resourceType", "id", "meta", "status", "class", "period", "subject"}
    whole = _ok(search("Encounter", _id=clinic["p1"], _summary="false"))["entry"][0]["resource"]
    assert "tag" not in whole["meta"]


def test_elements_apply_to_matches_and_summary_to_included_patients(clinic: dict[str, Any]) -> None:
    bundle = _ok(search("Encounter", _id=clinic["p1"], _include="Encounter:subject", _summary="true"))
    patient = bundle["entry"][1]["resource"]
    assert SUBSETTED in patient["meta"]["tag"] and "name" in patient


@pytest.mark.parametrize(
    "params",
    [{"_elements": "nonsense"}, {"_elements": "status", "_summary": "true"}, {"_summary": "everything"}],
)
def test_bad_subsets_are_refused(clinic: dict[str, Any], params: dict[str, str]) -> None:
    assert search("Encounter", **params).status == 400


def test_read_and_vread_take_summary_and_elements(clinic: dict[str, Any]) -> None:
    path = {"id": clinic["peter"]}
    read = call(
        "patient_read",
        "GET",
        f"/api/fhir/Patient/{clinic['peter']}",
        path_params=path,
        query={"_elements": ["birthDate"]},
    )
    assert read.status == 200
    assert set(read.body) == {"resourceType", "id", "meta", "birthDate"}
    assert SUBSETTED in read.body["meta"]["tag"]
    vread = call(
        "encounter_vread",
        "GET",
        f"/api/fhir/Encounter/{clinic['p1']}/_history/1",
        path_params={"id": clinic["p1"], "vid": "1"},
        query={"_summary": ["true"]},
    )
    assert vread.status == 200 and "period" not in vread.body
    counted = call(
        "patient_read",
        "GET",
        f"/api/fhir/Patient/{clinic['peter']}",
        path_params=path,
        query={"_summary": ["count"]},
    )
    assert counted.status == 400


# -- POST _search ----------------------------------------------------------------------------------


def test_post_search_answers_as_get_and_keeps_the_query_out_of_its_links(clinic: dict[str, Any]) -> None:
    form = {"patient.identifier": f"{MRN}|MRN-1", "_count": "1", "_include": "Encounter:subject"}
    # When the search is posted as a form
    posted = _ok(_post_search("Encounter", form))
    gotten = _ok(search("Encounter", **form))
    # Then the first page is the GET one
    assert ids_of(posted) == ids_of(gotten)
    # And no link holds the identifier or the parameter names, only a sealed token
    for link in posted["link"]:
        assert "MRN-1" not in link["url"] and "identifier" not in link["url"]
        assert urlsplit(link["url"]).query.startswith("_page=s1.")
    # And following the links (by GET) gives the same pages as the GET search
    posted_pages = _follow(_post_search("Encounter", form), "Encounter")
    gotten_pages = _follow(search("Encounter", **form), "Encounter")
    assert [ids_of(page) for page in posted_pages] == [ids_of(page) for page in gotten_pages]
    assert [ids_of(page) for page in posted_pages] == [
        [clinic["p1"], clinic["peter"]],
        [clinic["p2"], clinic["peter"]],
    ]


def test_post_search_combines_url_and_body_parameters(clinic: dict[str, Any]) -> None:
    answer = _post_search("Patient", {"family": "chalmers"}, query={"birthdate": ["1990-05-01"]})
    assert ids_of(_ok(answer)) == [clinic["anna"]]
    self_link = _ok(_post_search("Patient", "")).get("link")[0]["url"]
    # A self link is itself a sealed link: a GET of it repeats the search
    again = call("patient_search", "GET", "/api/fhir/Patient", query=parse_qs(urlsplit(self_link).query))
    assert len(ids_of(_ok(again))) == 3


def test_post_search_refuses_other_bodies_and_altered_tokens(clinic: dict[str, Any]) -> None:
    json_type = {"Content-Type": "application/json"}
    as_json = _post_search("Encounter", '{"status": "finished"}', headers=json_type)
    assert as_json.status == 415
    link = _ok(_post_search("Encounter", {"_count": "1"})).get("link")[0]["url"]
    token = parse_qs(urlsplit(link).query)["_page"][0]
    altered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert search("Encounter", _page=altered).status == 400
    assert call("patient_search", "GET", "/api/fhir/Patient", query={"_page": [token]}).status == 400
    assert search("Encounter", _page=token, status="finished").status == 400
    assert _post_search("Encounter", {"status": "made-up"}).status == 400


@pytest.mark.parametrize("budget", [10, 14, 20, 30])
@pytest.mark.parametrize(
    ("resource_type", "params"),
    [
        ("Encounter", {"_include": "Encounter:subject", "_count": "4"}),
        ("Encounter", {"patient.given": "peter", "_include": "Encounter:patient"}),
        ("Patient", {"given": "peter", "_revinclude": "Encounter:subject"}),
    ],
)
def test_a_small_read_budget_never_leaves_includes_out_silently(
    clinic: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    budget: int,
    resource_type: str,
    params: dict[str, str],
) -> None:
    # Given a read budget too small for some of these searches and what they include
    monkeypatch.setenv("SEARCH_READ_BUDGET", str(budget))
    reset_settings()
    # When each is run
    answer = search(resource_type, **params)
    # Then it is refused as too costly, or answered with every included resource or a warning saying
    # some were left out
    if answer.status == 400:
        assert answer.body["issue"][0]["code"] == "too-costly"
        return
    bundle = _ok(answer)
    matches = [entry["resource"] for entry in bundle.get("entry", []) if entry["search"]["mode"] == "match"]
    included = {
        entry["resource"]["id"] for entry in bundle.get("entry", []) if entry["search"]["mode"] == "include"
    }
    warned = any(entry["search"]["mode"] == "outcome" for entry in bundle.get("entry", []))
    if resource_type == "Encounter":
        expected = {match["subject"]["reference"].split("/")[1] for match in matches}
    else:
        owners = {"p1": "peter", "p2": "peter", "a1": "anna", "o1": "ada"}
        shown = {match["id"] for match in matches}
        expected = {clinic[encounter] for encounter, owner in owners.items() if clinic[owner] in shown}
    assert included <= expected
    assert included == expected or warned
