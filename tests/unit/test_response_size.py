"""Answer sizes as Lambda counts them: the escaped body inside the serialised proxy response."""

from __future__ import annotations

import json

from fhir_api.api.http import Response
from fhir_api.api.response_size import (
    HEADER_ALLOWANCE,
    escaped_bytes,
    page_room,
    page_skeleton_bytes,
    proxy_bytes,
)
from fhir_api.fhir import fhirjson
from fhir_api.fhir.fhirjson import RawJson
from fhir_api.search.paging import MAX_TOKEN_LENGTH

# Quotes, a backslash, a newline escape, accented, CJK and astral characters.
AWKWARD = 'He said "ça va" \\ 3\\n 痛み 🩺 ' * 50


def test_the_escaped_size_is_never_below_what_either_lambda_runtime_writes() -> None:
    proxy = {"statusCode": 200, "headers": {}, "body": AWKWARD, "isBase64Encoded": False}

    # python3.11 and older write \\uXXXX escapes; python3.12 writes UTF-8
    older = len(json.dumps(proxy).encode("utf-8"))
    newer = len(json.dumps(proxy, ensure_ascii=False).encode("utf-8"))

    assert proxy_bytes(proxy) == older >= newer
    assert escaped_bytes(AWKWARD + AWKWARD) == 2 * escaped_bytes(AWKWARD) > len(AWKWARD.encode("utf-8"))


def test_a_page_filled_through_the_room_stays_under_its_limit_with_its_links_and_headers() -> None:
    # Given entries of about 100 KB each, and an answer limit of 1 MB
    limit = 1024 * 1024
    entries = [
        fhirjson.dumps({"fullUrl": f"urn:{n}", "resource": RawJson(json.dumps({"note": AWKWARD * 20}))})
        for n in range(30)
    ]
    self_url = "https://api.example.org/Prod/api/fhir/Encounter?_count=100"
    skeleton_bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 10**12,
        "link": [
            {"relation": "self", "url": self_url},
            {"relation": "next", "url": self_url + "&_page=" + "x" * 8192},
        ],
        "entry": [],
    }
    room = page_room(
        limit, proxy_bytes(Response(200, fhirjson.dumps(skeleton_bundle)).to_proxy()), lambda entry: entry
    )

    # When entries are admitted while they fit
    admitted = [entry for entry in entries if room.admit(entry)]

    # Then the page stops early, and the answer with a next link and CORS headers is under the limit
    assert 1 <= len(admitted) < len(entries)
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [
            {"relation": "self", "url": self_url},
            {"relation": "next", "url": self_url + "&_page=" + "t" * 400},
        ],
        "entry": [RawJson(entry) for entry in admitted],
    }
    response = Response(200, fhirjson.dumps(bundle))
    response.headers.update({"Access-Control-Allow-Origin": "https://app.example.org", "Vary": "Origin"})
    assert proxy_bytes(response.to_proxy()) <= limit
    # And the page was filled: one entry more would have eaten into the room kept for the longest
    # page token and for headers added later
    bundle["entry"].append(RawJson(entries[len(admitted)]))
    with_one_more = proxy_bytes(Response(200, fhirjson.dumps(bundle)).to_proxy())
    assert with_one_more > limit - MAX_TOKEN_LENGTH - HEADER_ALLOWANCE


def test_the_first_entry_is_always_admitted() -> None:
    room = page_room(1000, proxy_bytes({"statusCode": 200}), lambda entry: entry)

    assert room.admit("x" * 5000)
    assert not room.admit("y")


def test_a_page_is_written_from_the_entry_texts_that_were_sized() -> None:
    # Given entries whose text is made by a call that is counted
    made: list[str] = []

    def entry_text(item: dict[str, str]) -> str:
        made.append(item["id"])
        return json.dumps(item)

    room = page_room(10_000, proxy_bytes({"statusCode": 200}), entry_text)
    admitted = {"id": "a"}
    refused = {"id": "b" * 20_000}

    # When one entry is admitted and one does not fit
    assert room.admit(admitted)
    assert not room.admit(refused)

    # Then the admitted entry's text is the one sized, not made again; the other's is made when asked
    assert room.entry_text(admitted) == '{"id": "a"}'
    assert room.entry_text(dict(admitted)) == '{"id": "a"}'
    assert made == ["a", "b" * 20_000, "a"]


def test_a_pages_skeleton_is_counted_with_its_self_url_escaped_as_the_answer_writes_it() -> None:
    # A self URL with what JSON escapes: quotes, a backslash, accented, CJK and astral characters
    self_url = 'https://api.example.org/api/fhir/Patient?name="ça va"\\痛み🩺&_count=5'
    for bundle_type, token_length in (("searchset", MAX_TOKEN_LENGTH), ("history", 300)):
        skeleton = {
            "resourceType": "Bundle",
            "type": bundle_type,
            "total": 10**12,
            "link": [
                {"relation": "self", "url": self_url},
                {"relation": "next", "url": f"{self_url}&_page={'x' * token_length}"},
            ],
            "entry": [{"resource": {"resourceType": "OperationOutcome", "text": "x" * 2048}}],
        }
        written = proxy_bytes(Response(200, fhirjson.dumps(skeleton)).to_proxy())

        assert page_skeleton_bytes(bundle_type, self_url, token_length) == written
