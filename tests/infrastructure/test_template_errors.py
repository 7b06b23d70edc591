"""Bad input to the template tooling gives one line that names the problem and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from local import LocalError
from local.tables import table_resources
from local.template import load_template


def _one_line(error: pytest.ExceptionInfo[LocalError]) -> str:
    message = str(error.value)
    assert "\n" not in message and message
    return message


def test_a_missing_template_names_the_path_and_the_fix(tmp_path: Path) -> None:
    # Given a path with no template
    missing = tmp_path / "template.yaml"
    # When it is loaded
    with pytest.raises(LocalError) as error:
        load_template(missing)
    # Then the one-line error names it and says what to do
    message = _one_line(error)
    assert str(missing) in message and "repository root" in message


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    # Given a template that is not YAML
    broken = tmp_path / "template.yaml"
    broken.write_text("Resources:\n  A: [unclosed\n", encoding="utf-8")
    # When it is loaded
    with pytest.raises(LocalError) as error:
        load_template(broken)
    # Then the error says where
    assert "line" in _one_line(error)


def test_short_form_tags_become_the_long_form(tmp_path: Path) -> None:
    # Given a template using CloudFormation's short tags
    path = tmp_path / "template.yaml"
    path.write_text(
        "Resources:\n  F:\n    Properties:\n"
        "      A: !Ref T\n      B: !GetAtt T.Arn\n      C: !Sub '${T.Arn}/index/*'\n"
        "      D: !If [Cond, 1, 2]\n      E: !Equals [!Ref P, 'true']\n",
        encoding="utf-8",
    )
    # When it is loaded
    properties = load_template(path)["Resources"]["F"]["Properties"]
    # Then each tag reads as CloudFormation's JSON form
    assert properties == {
        "A": {"Ref": "T"},
        "B": {"Fn::GetAtt": ["T", "Arn"]},
        "C": {"Fn::Sub": "${T.Arn}/index/*"},
        "D": {"Fn::If": ["Cond", 1, 2]},
        "E": {"Fn::Equals": [{"Ref": "P"}, "true"]},
    }


def test_a_template_without_tables_names_the_missing_tables(tmp_path: Path) -> None:
    # Given a template with resources but no DynamoDB table
    path = tmp_path / "template.yaml"
    path.write_text("Resources:\n  Api:\n    Type: AWS::Serverless::Api\n", encoding="utf-8")
    # When the tables are read from it
    with pytest.raises(LocalError) as error:
        table_resources(load_template(path))
    # Then the one-line error names the missing table type and where to add it
    message = _one_line(error)
    assert "AWS::DynamoDB::Table" in message and "EncountersTable" in message and "Resources" in message
