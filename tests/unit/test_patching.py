"""JSON Patch (RFC 6902, pointers per RFC 6901) and JSON Merge Patch (RFC 7386) on FHIR JSON: the
RFCs' own examples, decimals kept as written, and the line between a malformed patch (400) and one
that cannot be applied to this resource (422)."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_api import errors
from fhir_api.fhir import fhirjson
from fhir_api.fhir.patching import apply_json_patch, apply_merge_patch


def patched(document: str, patch: str) -> str:
    return fhirjson.dumps(apply_json_patch(fhirjson.loads(document), fhirjson.loads(patch)))


@pytest.mark.parametrize(
    ("document", "patch", "expected"),
    [
        # RFC 6902 appendix A.1, A.2, A.3, A.4, A.6, A.7, A.8, A.10, A.16
        ('{"foo":"bar"}', '[{"op":"add","path":"/baz","value":"qux"}]', '{"foo":"bar","baz":"qux"}'),
        (
            '{"foo":["bar","baz"]}',
            '[{"op":"add","path":"/foo/1","value":"qux"}]',
            '{"foo":["bar","qux","baz"]}',
        ),
        ('{"baz":"qux","foo":"bar"}', '[{"op":"remove","path":"/baz"}]', '{"foo":"bar"}'),
        ('{"foo":["bar","qux","baz"]}', '[{"op":"remove","path":"/foo/1"}]', '{"foo":["bar","baz"]}'),
        (
            '{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}',
            '[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]',
            '{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}',
        ),
        (
            '{"foo":["all","grass","cows","eat"]}',
            '[{"op":"move","from":"/foo/1","path":"/foo/3"}]',
            '{"foo":["all","cows","eat","grass"]}',
        ),
        (
            '{"baz":"qux","foo":["a",2,"c"]}',
            '[{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]',
            '{"baz":"qux","foo":["a",2,"c"]}',
        ),
        (
            '{"foo":"bar"}',
            '[{"op":"add","path":"/child","value":{"grandchild":{}}}]',
            '{"foo":"bar","child":{"grandchild":{}}}',
        ),
        (
            '{"foo":["bar"]}',
            '[{"op":"add","path":"/foo/-","value":["abc","def"]}]',
            '{"foo":["bar",["abc","def"]]}',
        ),
        # RFC 6901 escapes: ~1 is /, ~0 is ~
        ('{"a/b":{"m~n":1}}', '[{"op":"replace","path":"/a~1b/m~0n","value":2}]', '{"a/b":{"m~n":2}}'),
        # Decimals keep their digits, in the document and in what the patch brings
        (
            '{"v":1.50,"w":[]}',
            '[{"op":"copy","from":"/v","path":"/w/0"},{"op":"add","path":"/x","value":2.000}]',
            '{"v":1.50,"w":[1.50],"x":2.000}',
        ),
        # A test compares numbers by value
        ('{"v":1.50}', '[{"op":"test","path":"/v","value":1.5}]', '{"v":1.50}'),
    ],
)
def test_the_rfc_examples_and_fhir_decimals(document: str, patch: str, expected: str) -> None:
    assert patched(document, patch) == expected


@pytest.mark.parametrize(
    "patch",
    [
        '{"op":"add","path":"/a","value":1}',  # not an array
        '[["add"]]',
        '[{"op":"rename","path":"/a"}]',
        '[{"path":"/a","value":1}]',
        '[{"op":"add","value":1}]',
        '[{"op":"add","path":"a","value":1}]',  # a pointer starts with /
        '[{"op":"add","path":"/a~2","value":1}]',  # ~ only as ~0 or ~1
        '[{"op":"replace","path":"/a"}]',  # no value
        '[{"op":"copy","path":"/b"}]',  # no from
        '[{"op":"move","from":"/a","path":"/a/b"}]',  # into its own child
    ],
)
def test_a_malformed_patch_is_a_bad_request(patch: str) -> None:
    with pytest.raises(errors.InvalidRequest):
        patched('{"a":{"b":1},"l":[1]}', patch)


@pytest.mark.parametrize(
    ("patch", "said"),
    [
        ('[{"op":"test","path":"/a/b","value":"1"}]', "failed"),  # a string is not a number
        ('[{"op":"test","path":"/t","value":1}]', "failed"),  # true is not 1
        ('[{"op":"remove","path":"/missing"}]', "does not exist"),
        ('[{"op":"replace","path":"/a/c","value":1}]', "does not exist"),
        ('[{"op":"add","path":"/missing/x","value":1}]', "does not exist"),
        ('[{"op":"add","path":"/l/2","value":1}]', "past the end"),
        ('[{"op":"remove","path":"/l/-"}]', "not an index"),
        ('[{"op":"add","path":"/l/01","value":1}]', "not an index"),
        ('[{"op":"remove","path":""}]', "whole resource"),
        ('[{"op":"replace","path":"","value":[]}]', "not one"),
        ('[{"op":"add","path":"/a/b/c","value":1}]', "cannot hold"),
    ],
)
def test_a_patch_that_does_not_fit_the_document_is_unprocessable(patch: str, said: str) -> None:
    with pytest.raises(errors.UnprocessablePatch, match=said):
        patched('{"a":{"b":1},"l":[1],"t":true}', patch)


def test_a_failed_patch_leaves_the_document_unchanged() -> None:
    document: dict[str, Any] = fhirjson.loads('{"a":[1,2]}')
    with pytest.raises(errors.UnprocessablePatch):
        apply_json_patch(document, [{"op": "remove", "path": "/a/0"}, {"op": "remove", "path": "/zz"}])
    assert document == {"a": [1, 2]}


@pytest.mark.parametrize(
    ("document", "patch", "expected"),
    [
        # RFC 7386 appendix A (those with an object patch)
        ('{"a":"b"}', '{"a":"c"}', '{"a":"c"}'),
        ('{"a":"b"}', '{"b":"c"}', '{"a":"b","b":"c"}'),
        ('{"a":"b"}', '{"a":null}', "{}"),
        ('{"a":"b","b":"c"}', '{"a":null}', '{"b":"c"}'),
        ('{"a":["b"]}', '{"a":"c"}', '{"a":"c"}'),
        ('{"a":{"b":"c"}}', '{"a":{"b":"d","c":null}}', '{"a":{"b":"d"}}'),
        ('{"a":[{"b":"c"}]}', '{"a":[1]}', '{"a":[1]}'),
        ('{"e":null}', '{"a":1}', '{"e":null,"a":1}'),
        ("{}", '{"a":{"bb":{"ccc":null}}}', '{"a":{"bb":{}}}'),
        ('{"v":1.50}', '{"w":2.0}', '{"v":1.50,"w":2.0}'),
    ],
)
def test_merge_patch_follows_rfc_7386(document: str, patch: str, expected: str) -> None:
    merged = apply_merge_patch(fhirjson.loads(document), fhirjson.loads(patch))
    assert fhirjson.dumps(merged) == expected


def test_a_merge_patch_is_an_object() -> None:
    with pytest.raises(errors.InvalidRequest):
        apply_merge_patch({"a": 1}, [{"op": "remove", "path": "/a"}])


def test_copies_that_would_double_the_resource_again_and_again_are_refused() -> None:
    # Given a patch of copies each doubling the list it copies into (2**40 values after 40 of them)
    doubling = [{"op": "copy", "from": "/l", "path": "/l/-"} for _ in range(40)]
    # Then it is refused before it exhausts anything
    with pytest.raises(errors.UnprocessablePatch, match="copies more than"):
        apply_json_patch({"l": [1]}, doubling)
