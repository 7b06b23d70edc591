"""Request bodies as FHIR JSON: exact decimals, and the bodies refused before they are parsed."""

from __future__ import annotations

import pytest

from fhir_api.errors import InvalidRequest
from fhir_api.fhir import fhirjson


def _nested(depth: int) -> str:
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


def test_a_body_as_deep_as_allowed_is_parsed_and_one_level_deeper_is_refused() -> None:
    assert fhirjson.loads(_nested(fhirjson.MAX_DEPTH).encode()) is not None

    with pytest.raises(InvalidRequest, match="nests deeper than 100 levels"):
        fhirjson.loads(_nested(fhirjson.MAX_DEPTH + 1).encode())


def test_many_brackets_side_by_side_or_inside_strings_are_not_depth() -> None:
    wide = "[" + ",".join(["{}"] * 300) + "]"
    in_strings = '{"text":"' + "[{" * 300 + '"}'

    assert len(fhirjson.loads(wide)) == 300
    assert fhirjson.loads(in_strings.encode())["text"] == "[{" * 300


def test_decimals_are_written_back_as_they_were_sent() -> None:
    body = b'{"value":1.50,"small":1e-3,"count":2}'

    assert fhirjson.dumps(fhirjson.loads(body)) == body.decode()


@pytest.mark.parametrize("body", [b"\xff\xfe{}", '{"a":"\udcff"}'])
def test_a_body_that_is_not_utf8_is_refused(body: bytes | str) -> None:
    with pytest.raises(InvalidRequest, match="not valid UTF-8"):
        fhirjson.loads(body)


WITH_BOM = '\ufeff{"resourceType":"Patient"}'


@pytest.mark.parametrize("body", [WITH_BOM, WITH_BOM.encode()])
def test_a_leading_byte_order_mark_is_ignored(body: bytes | str) -> None:
    # As RFC 8259 allows a parser to: files saved by Windows tools start with one.
    assert fhirjson.loads(body) == {"resourceType": "Patient"}


def test_a_byte_order_mark_anywhere_else_is_not_json() -> None:
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        fhirjson.loads('{"resourceType":"Patient"}\ufeff'.encode())
