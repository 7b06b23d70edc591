"""Hostile input over HTTP: broken bodies, wrong content types, poisoned search parameters, edited page
tokens and replayed Idempotency-Keys. Each is a 4xx OperationOutcome (never a 5xx) and stores nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from local import issuer
from local.stack import LocalStack
from tests._examples import minimal_encounter

TIMEOUT_SECONDS = 30
FHIR_JSON = "application/fhir+json"
NESTING = 5000
LARGE_BYTES = 600 * 1024


def encounter(patient_id: str, **changes: Any) -> dict[str, Any]:
    return minimal_encounter(patient_id, **{"period": {"start": "2024-06-01T09:00:00Z"}, **changes})


def assert_outcome(response: requests.Response, status: int | tuple[int, ...], what: str) -> dict[str, Any]:
    """A 4xx answer with the expected status and an OperationOutcome body."""
    expected = (status,) if isinstance(status, int) else status
    assert response.status_code in expected, f"{what}: {response.status_code} {response.text[:300]}"
    assert response.headers.get("Content-Type", "").startswith(FHIR_JSON), f"{what}: {response.headers}"
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome", what
    assert body["issue"] and body["issue"][0]["severity"] in ("error", "fatal"), what
    return body


class Client:
    """Raw HTTP against the local API with a bearer token (bodies sent as given, bytes included)."""

    def __init__(self, base_url: str, role: str = "practitioner", sub: str = issuer.DEFAULT_SUB) -> None:
        self.base_url = base_url
        self.authorization = f"Bearer {issuer.mint(role, sub)}"

    def send(
        self, method: str, path: str, body: bytes | str | None = None, **headers: str
    ) -> requests.Response:
        sent = {"Authorization": self.authorization, **{k.replace("_", "-"): v for k, v in headers.items()}}
        return requests.request(
            method, f"{self.base_url}/{path}", data=body, headers=sent, timeout=TIMEOUT_SECONDS
        )

    def get(self, path: str, params: Any = None) -> requests.Response:
        return requests.get(
            f"{self.base_url}/{path}",
            params=params,
            headers={"Authorization": self.authorization},
            timeout=TIMEOUT_SECONDS,
        )

    def encounters_of(self, patient_id: str) -> int:
        """How many encounters the patient has (the server's count)."""
        response = self.get("Encounter", {"subject": f"Patient/{patient_id}", "_summary": "count"})
        assert response.status_code == 200, response.text
        return int(response.json()["total"])


@pytest.fixture(scope="module")
def client(local_stack: LocalStack) -> Client:
    """A practitioner's raw HTTP client."""
    return Client(local_stack.base_url)


@pytest.fixture
def patient_id(client: Client, local_stack: LocalStack) -> str:
    """A fresh patient (so counts of its encounters start at zero)."""
    if local_stack.gateway is not None:
        local_stack.gateway.activate()
    response = client.send(
        "POST",
        "Patient",
        json.dumps({"resourceType": "Patient", "name": [{"family": "Hostile"}]}),
        Content_Type=FHIR_JSON,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def hostile_bodies(patient_id: str) -> dict[str, tuple[int, bytes, str]]:
    """name -> (expected status, body, Content-Type); each would otherwise be an encounter of the patient."""
    valid = json.dumps(encounter(patient_id))
    nested = '{"url":"http://example.org/x","valueString":"x","extension":[' * NESTING
    deep = json.dumps(encounter(patient_id))[:-1] + ',"extension":[' + nested + "{}" + "]}" * NESTING + "]}"
    large = json.dumps(encounter(patient_id, text={"status": "generated", "div": "x" * LARGE_BYTES}))
    bad_utf8 = (
        json.dumps(encounter(patient_id, status="planned"))
        .encode()
        .replace(b'"planned"', b'"plan\xff\xfened"')
    )
    return {
        "malformed JSON": (400, valid[:-5].encode(), FHIR_JSON),
        "empty body": (400, b"", FHIR_JSON),
        "whitespace body": (400, b"  \n ", FHIR_JSON),
        "JSON array": (400, f"[{valid}]".encode(), FHIR_JSON),
        "JSON null": (400, b"null", FHIR_JSON),
        "JSON string": (400, json.dumps(valid).encode(), FHIR_JSON),
        "NaN number": (400, valid.replace('"status"', '"length":{"value":NaN},"status"').encode(), FHIR_JSON),
        f"{NESTING} levels of nesting": (400, deep.encode(), FHIR_JSON),
        "600 KB body": (413, large.encode(), FHIR_JSON),
        "invalid UTF-8": (400, bad_utf8, FHIR_JSON),
        "lone surrogate escape": (400, valid.replace('"AMB"', '"\\ud800"').encode(), FHIR_JSON),
        "text/plain": (415, valid.encode(), "text/plain"),
        "application/xml": (415, valid.encode(), "application/xml"),
        "form encoded": (415, valid.encode(), "application/x-www-form-urlencoded"),
        "no Content-Type": (415, valid.encode(), ""),
        "FHIR XML": (415, valid.encode(), "application/fhir+xml"),
    }


BODY_CASES = list(hostile_bodies("x"))


@pytest.mark.parametrize("case", BODY_CASES)
def test_hostile_create_body_is_refused_and_nothing_stored(
    client: Client, patient_id: str, case: str
) -> None:
    # Given a hostile body that would otherwise be an encounter of the patient
    status, body, content_type = hostile_bodies(patient_id)[case]

    # When it is POSTed
    headers = {"Content_Type": content_type} if content_type else {}
    response = client.send("POST", "Encounter", body, **headers)

    # Then it is a 4xx OperationOutcome and the patient still has no encounter
    assert_outcome(response, status, case)
    assert client.encounters_of(patient_id) == 0


def test_a_body_that_starts_with_a_byte_order_mark_is_stored(client: Client, patient_id: str) -> None:
    # Given an encounter as a Windows tool saves a UTF-8 file: with a byte order mark first
    body = "\ufeff".encode() + json.dumps(encounter(patient_id)).encode()

    # When it is POSTed
    response = client.send("POST", "Encounter", body, Content_Type=FHIR_JSON)

    # Then it is stored like any other (RFC 8259 lets a parser ignore the mark), and read back without it
    assert response.status_code == 201, response.text
    assert client.encounters_of(patient_id) == 1
    assert client.get(f"Encounter/{response.json()['id']}").content.startswith(b'{"resourceType":"Encounter"')


@pytest.mark.parametrize("case", BODY_CASES)
def test_hostile_update_body_is_refused_and_the_version_kept(
    client: Client, patient_id: str, case: str
) -> None:
    # Given an existing encounter of the patient
    created = client.send("POST", "Encounter", json.dumps(encounter(patient_id)), Content_Type=FHIR_JSON)
    assert created.status_code == 201, created.text
    encounter_id = created.json()["id"]
    status, body, content_type = hostile_bodies(patient_id)[case]
    body = body.replace(
        b'"resourceType": "Encounter"', f'"resourceType": "Encounter", "id": "{encounter_id}"'.encode()
    )

    # When the hostile body is PUT over it
    headers = {"Content_Type": content_type} if content_type else {}
    response = client.send("PUT", f"Encounter/{encounter_id}", body, **headers)

    # Then it is a 4xx OperationOutcome and the encounter is still at version 1
    assert_outcome(response, status, case)
    history = client.get(f"Encounter/{encounter_id}/_history").json()
    assert [entry["resource"]["meta"]["versionId"] for entry in history["entry"]] == ["1"]


@pytest.mark.parametrize(
    "params",
    [
        {"date": "2024-02-30"},
        {"date": "2024-13-01"},
        {"date": "ge"},
        {"date": "2024-01-01T25:00:00Z"},
        {"date": "xx2024-01-01"},
        {"date": "99999-01-01"},
        {"date": "ge2024-01-01T00:00:00+99:00"},
        {"_lastUpdated": "yesterday"},
        {"_count": "-1"},
        {"_count": "-99999999999999999999"},
        {"_count": "1e3"},
        {"_count": "ten"},
        {"_count": ["1", "2"]},
        {"status": "\x00"},
        {"status": "finished\x00"},
        {"subject": "Patient/\x00"},
        {"sta\x00tus": "finished"},
        {"_id": "\x00"},
        {"_page": "\x00"},
        {"_page": "not-a-token"},
        {"_sort": "status"},
        {"_sort": "date,-date"},
        {"_summary": "bogus"},
        {"_total": "maybe"},
        {"status:not": "finished"},
        {"subject:missing": "true"},
        {"status": "a,,b"},
        {"status": "x" * 5000},
        {"date": ["ge2024-01-01"] * 50},
    ],
    ids=lambda params: urlencode(params, doseq=True)[:40],
)
def test_hostile_search_is_a_4xx(client: Client, params: dict[str, Any]) -> None:
    # When a search carries a malformed or poisoned parameter
    response = client.get("Encounter", params)

    # Then it is refused with a 4xx OperationOutcome
    assert_outcome(response, (400, 422), urlencode(params, doseq=True)[:80])


def test_a_huge_count_is_capped(client: Client, patient_id: str) -> None:
    # When a search asks for an absurd page size
    response = client.get("Encounter", {"subject": patient_id, "_count": "99999999999999999999999"})

    # Then the page size is capped at 100 (the self link says so)
    assert response.status_code == 200, response.text
    self_link = next(link["url"] for link in response.json()["link"] if link["relation"] == "self")
    assert parse_qs(urlsplit(self_link).query)["_count"] == ["100"]


@pytest.mark.parametrize(
    "path",
    [
        "Encounter/%00",
        "Encounter/" + "a" * 65,
        "Encounter/bad*id",
        "Encounter/x/_history/abc",
        "Encounter/x/_history/-1",
        "Encounter/x/_history/99999999999999999999",
        "Patient/%F0%9F%92%A9",
        "Encounter/%2E%2E",
    ],
)
def test_hostile_ids_are_a_4xx(client: Client, path: str) -> None:
    # When a read names an id no FHIR id can be
    response = client.get(path)

    # Then it is a 400 or 404 OperationOutcome
    assert_outcome(response, (400, 404), path)


@pytest.mark.parametrize("value", ['W/"abc"', "1", '"', "W/" + '"1' * 100, 'W/"-1"'])
def test_malformed_if_match_is_refused(client: Client, patient_id: str, value: str) -> None:
    # Given an encounter
    created = client.send("POST", "Encounter", json.dumps(encounter(patient_id)), Content_Type=FHIR_JSON)
    body = created.json()

    # When it is updated with a malformed If-Match
    response = client.send(
        "PUT", f"Encounter/{body['id']}", json.dumps(body), Content_Type=FHIR_JSON, If_Match=value
    )

    # Then the update is refused and nothing changes
    assert_outcome(response, (400, 412), f"If-Match {value!r}")
    assert client.get(f"Encounter/{body['id']}").json()["meta"]["versionId"] == "1"


# -- page tokens ----------------------------------------------------------------------------------


@pytest.fixture
def next_link(client: Client, patient_id: str) -> str:
    """The next link of the first page (one per page) of the patient's three encounters."""
    for day in ("01", "02", "03"):
        body = encounter(patient_id, period={"start": f"2024-07-{day}T09:00:00Z"})
        assert client.send("POST", "Encounter", json.dumps(body), Content_Type=FHIR_JSON).status_code == 201
    first = client.get("Encounter", {"subject": f"Patient/{patient_id}", "_count": "1"})
    assert first.status_code == 200
    return next(link["url"] for link in first.json()["link"] if link["relation"] == "next")


def with_token(link: str, edit: Callable[[str], str], **query_changes: str) -> dict[str, Any]:
    query = {name: values[0] for name, values in parse_qs(urlsplit(link).query).items()}
    query["_page"] = edit(query["_page"])
    query.update(query_changes)
    return query


def flip(text: str, position: int) -> str:
    index = position % len(text)
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]


def test_the_genuine_next_link_works(client: Client, next_link: str) -> None:
    # When the next link is followed as given
    response = requests.get(
        next_link, headers={"Authorization": client.authorization}, timeout=TIMEOUT_SECONDS
    )

    # Then it is the second page
    assert response.status_code == 200
    assert len(response.json()["entry"]) == 1


@pytest.mark.parametrize(
    "name, edit, changes",
    [
        ("payload edited", lambda token: flip(token, 5), {}),
        ("signature edited", lambda token: flip(token, -3), {}),
        ("truncated", lambda token: token[: len(token) // 2], {}),
        ("doubled", lambda token: token + token, {}),
        ("signature dropped", lambda token: token.rsplit(".", 1)[0], {}),
        ("another query", lambda token: token, {"status": "finished"}),
        ("another page size", lambda token: token, {"_count": "2"}),
    ],
)
def test_an_edited_page_token_is_refused(
    client: Client, next_link: str, name: str, edit: Callable[[str], str], changes: dict[str, str]
) -> None:
    # Given the next link with its page token edited, or reused for another query
    query = with_token(next_link, edit, **changes)

    # When it is followed
    response = client.get("Encounter", query)

    # Then it is a 400 OperationOutcome
    assert_outcome(response, 400, name)


def test_a_page_token_of_one_resource_type_is_refused_on_another(client: Client, next_link: str) -> None:
    # Given an Encounter page token
    token = parse_qs(urlsplit(next_link).query)["_page"][0]

    # When it is used on a Patient search and on a history
    on_patient = client.get("Patient", {"_page": token})
    on_history = client.get("Encounter/x/_history", {"_page": token})

    # Then both are refused
    assert_outcome(on_patient, 400, "Patient search")
    assert_outcome(on_history, (400, 404), "history")


# -- Idempotency-Key ------------------------------------------------------------------------------


def test_a_retried_create_returns_the_first_answer_and_stores_nothing_new(
    client: Client, patient_id: str
) -> None:
    # Given a create with an Idempotency-Key
    key = str(uuid.uuid4())
    body = json.dumps(encounter(patient_id))
    first = client.send("POST", "Encounter", body, Content_Type=FHIR_JSON, Idempotency_Key=key)
    assert first.status_code == 201, first.text

    # When it is retried with the same key and body
    retry = client.send("POST", "Encounter", body, Content_Type=FHIR_JSON, Idempotency_Key=key)

    # Then the retry gets the first answer, and the patient has one encounter
    assert retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["Location"] == first.headers["Location"]
    assert retry.headers["ETag"] == first.headers["ETag"]
    assert client.encounters_of(patient_id) == 1


def test_the_same_key_with_another_body_is_422(client: Client, patient_id: str) -> None:
    # Given a create with an Idempotency-Key
    key = str(uuid.uuid4())
    first = client.send(
        "POST", "Encounter", json.dumps(encounter(patient_id)), Content_Type=FHIR_JSON, Idempotency_Key=key
    )
    assert first.status_code == 201

    # When the same key comes with another body
    other = json.dumps(encounter(patient_id, status="arrived"))
    response = client.send("POST", "Encounter", other, Content_Type=FHIR_JSON, Idempotency_Key=key)

    # Then it is a 422 OperationOutcome and nothing new is stored
    assert_outcome(response, 422, "reused key")
    assert client.encounters_of(patient_id) == 1


def test_another_user_with_the_same_key_does_not_get_the_first_answer(
    client: Client, local_stack: LocalStack, patient_id: str
) -> None:
    # Given a create by one user with an Idempotency-Key
    key = str(uuid.uuid4())
    body = json.dumps(encounter(patient_id))
    first = client.send("POST", "Encounter", body, Content_Type=FHIR_JSON, Idempotency_Key=key)
    assert first.status_code == 201

    # When another user (another sub) sends the same key and body
    other_user = Client(local_stack.base_url, "practitioner", sub=f"someone-else-{uuid.uuid4().hex[:8]}")
    response = other_user.send("POST", "Encounter", body, Content_Type=FHIR_JSON, Idempotency_Key=key)

    # Then that user's request is served on its own: a new encounter, not the first user's answer
    assert response.status_code == 201, response.text
    assert response.json()["id"] != first.json()["id"]
    assert client.encounters_of(patient_id) == 2


@pytest.mark.parametrize("key", ["", "k" * 256, "bad\x01key", "\u00e9t\u00e9"])
def test_a_malformed_idempotency_key_is_refused(client: Client, patient_id: str, key: str) -> None:
    # When a create carries an unusable Idempotency-Key
    response = client.send(
        "POST", "Encounter", json.dumps(encounter(patient_id)), Content_Type=FHIR_JSON, Idempotency_Key=key
    )

    # Then it is refused, or served without the key, never a 5xx; at most one encounter is stored
    if response.status_code != 201:
        assert_outcome(response, 400, f"Idempotency-Key {key!r}")
    assert client.encounters_of(patient_id) == (1 if response.status_code == 201 else 0)


XHTML_DIV = '<div xmlns="http://www.w3.org/1999/xhtml">'
HOSTILE_NARRATIVES = {
    "script": XHTML_DIV + "<p>Seen</p><script>fetch('/api/fhir/Patient')</script></div>",
    "event handler": XHTML_DIV + '<img src="x" onerror="alert(document.cookie)"/></div>',
    "javascript: link": XHTML_DIV + '<a href="java&#x09;script:alert(1)">notes</a></div>',
    "iframe": XHTML_DIV + 'Seen<iframe src="https://evil.example/"/></div>',
    "style url()": XHTML_DIV + '<span style="background:url(https://evil.example/t.gif)">Seen</span></div>',
    "markup after the div": XHTML_DIV + "Seen</div><script>alert(1)</script>",
    "entity expansion": '<!DOCTYPE d [<!ENTITY a "aaaaaaaa">]>' + XHTML_DIV + "&a;&a;</div>",
    "CDATA read as markup": XHTML_DIV + "<![CDATA[><img src=x onerror=alert(1)>]]></div>",
    "no XHTML namespace": "<div>Seen</div>",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_NARRATIVES))
def test_a_narrative_with_active_content_is_refused_and_nothing_stored(
    client: Client, patient_id: str, case: str
) -> None:
    # Given an encounter and a patient whose narratives (one of them contained) carry the attack
    div = HOSTILE_NARRATIVES[case]
    family = f"Narrative-{uuid.uuid4().hex[:12]}"
    bodies = {
        "Encounter": encounter(patient_id, text={"status": "generated", "div": div}),
        "Patient": {
            "resourceType": "Patient",
            "name": [{"family": family}],
            "contained": [
                {"resourceType": "Organization", "id": "o1", "text": {"status": "generated", "div": div}}
            ],
            "managingOrganization": {"reference": "#o1"},
        },
    }
    expected = {"Encounter": "Encounter.text.div", "Patient": "Patient.contained[0].text.div"}

    for resource_type, body in bodies.items():
        # When it is POSTed through the gateway
        response = client.send("POST", resource_type, json.dumps(body), Content_Type=FHIR_JSON)

        # Then it is a 400 OperationOutcome naming the narrative
        outcome = assert_outcome(response, 400, f"{resource_type} {case}")
        expressions = [item for issue in outcome["issue"] for item in issue.get("expression", [])]
        assert expressions == [expected[resource_type]], expressions

    # And nothing was stored
    assert client.encounters_of(patient_id) == 0
    patients = client.get("Patient", {"family": family, "_summary": "count"})
    assert patients.status_code == 200 and patients.json()["total"] == 0, patients.text


def test_a_formatted_narrative_is_stored_and_served_verbatim(client: Client, patient_id: str) -> None:
    # Given an encounter whose narrative uses tables, styles, links and an inline image
    div = (
        XHTML_DIV + '<table class="grid"><tr><td style="color: gray">Seen by</td><td><a href="#p">Dr</a>'
        '</td></tr></table><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="A"/>&#160;&amp;</div>'
    )
    body = encounter(patient_id, text={"status": "generated", "div": div})

    # When it is created and read back
    created = client.send("POST", "Encounter", json.dumps(body), Content_Type=FHIR_JSON)
    assert created.status_code == 201, created.text
    read = client.get(f"Encounter/{created.json()['id']}")

    # Then the narrative comes back exactly as sent
    assert read.status_code == 200 and read.json()["text"]["div"] == div
