"""The exported JSON Schema of recipe files stays equal to the pydantic model, and the shipped example
recipe is valid under both."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from loraledger.schemas import export
from loraledger.schemas.specs import Recipe

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "recipe.yaml"
SCHEMA = REPO / "schemas" / "json" / "recipe.schema.json"


def test_committed_schema_equals_the_export() -> None:
    assert export.stale() == [], "run: python -m loraledger.schemas.export"
    assert SCHEMA.read_text() == export.schema_text(Recipe)
    assert export.main(["--check"]) == 0


def test_export_writes_what_check_accepts(tmp_path: Path) -> None:
    assert export.stale(tmp_path) == [tmp_path / "recipe.schema.json"]
    assert export.export(tmp_path) == [tmp_path / "recipe.schema.json"]
    assert export.stale(tmp_path) == []


def test_example_recipe_is_valid_and_says_how_to_run_it() -> None:
    text = EXAMPLE.read_text()
    first = text.splitlines()[0]
    assert first.startswith("# adapters train ") and "--config examples/recipe.yaml" in first
    document = yaml.safe_load(text)
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    assert Recipe.model_validate(document).training.replay == 0.1


@pytest.mark.parametrize(
    "document",
    [
        {"training": {"epoch": 2}},  # a typo
        {"training": {"quantize": "3bit"}},
        {"lora": {"r": 0}},
        {"training": {"replay": 1.0}},
        {"eval": {"stride": "wide"}},
    ],
)
def test_schema_and_model_agree_on_bad_recipes(document: dict[str, object]) -> None:
    schema = json.loads(SCHEMA.read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
    with pytest.raises(ValueError):
        Recipe.model_validate(document)
