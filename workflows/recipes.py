"""Recipe files: YAML or JSON, validated against ``schemas.specs.Recipe`` (exported as JSON Schema)."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loraledger.schemas.errors import InvalidInput

if TYPE_CHECKING:
    from loraledger.schemas.specs import Recipe


def load_recipe(path: Path) -> dict[str, Any]:
    if not path.is_file():  # also refuses a FIFO, whose read would never end
        raise InvalidInput(f"recipe file not found: {path}")
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not UTF-8 text; a recipe is YAML or JSON") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise InvalidInput(f"{path}: not valid YAML/JSON: {lines[0]}") from None
    except RecursionError:  # found by tests/fuzz: deep nesting
        raise InvalidInput(f"{path}: nested too deeply to be a recipe") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: a recipe is a mapping with lora/training/eval sections")
    return data


def build_recipe(
    data: dict[str, Any],
    overrides: dict[tuple[str, str], Any],
    *,
    source: str | None = None,
    name_of: Callable[[str, str], str] = lambda section, field: f"{section}.{field}",
) -> tuple["Recipe", set[str]]:
    """A recipe file's settings (``data``) with ``overrides[(section, field)]`` on top, validated.

    Returns the recipe and the LoRA fields set explicitly (a continued adapter refuses those that
    differ from its parent's). An invalid value is named by ``name_of(section, field)`` (the CLI
    passes its flag names) or by the file it came from."""
    from pydantic import ValidationError

    from loraledger.schemas.specs import Recipe

    data = {key: value for key, value in data.items()}
    for section in ("lora", "training", "eval", "retention"):
        if data.get(section) is None:
            data[section] = {}
        elif not isinstance(data[section], dict):
            raise InvalidInput(f"{source}: {section!r} must be a mapping of settings")
        else:
            data[section] = dict(data[section])
    explicit_lora = set(data["lora"])
    for (section, field), value in overrides.items():
        data[section][field] = value
        if section == "lora":
            explicit_lora.add(field)
    template = data["training"].get("chat_template")
    if isinstance(template, str) and "{" not in template:
        # A path rather than a template: Jinja templates do not fit on a command line.
        path = Path(template).expanduser()
        if not path.is_file():
            where = name_of("training", "chat_template")
            raise InvalidInput(f"{where}: {template} is neither a Jinja template nor a file")
        data["training"]["chat_template"] = path.read_text()
    try:
        return Recipe.model_validate(data), explicit_lora
    except ValidationError as exc:
        first = exc.errors()[0]
        location = tuple(str(part) for part in first["loc"])
        where = ".".join(location)
        if len(location) >= 2 and (location[0], location[1]) in overrides:
            named = name_of(location[0], location[1])
            if named != where:
                where += f" ({named})"
        elif source:
            where += f" (in {source})"
        raise InvalidInput(f"invalid recipe setting {where}: {first['msg']}") from None


def recipe_with(recipe: "Recipe | None", fields: dict[str, Any]) -> tuple["Recipe", set[str]]:
    """``recipe`` (or the defaults) with keyword fields on top, as ``Ledger.train(..., epochs=2)``
    takes them: a LoRA or training field by its own name (``r``, ``alpha``, ``epochs``, ``replay``)."""
    from loraledger.schemas.specs import LoraSpec, RetentionSpec, TrainSpec

    overrides: dict[tuple[str, str], Any] = {}
    for field, value in fields.items():
        if field in LoraSpec.model_fields:
            overrides[("lora", field)] = value
        elif field in TrainSpec.model_fields:
            overrides[("training", field)] = value
        elif field in RetentionSpec.model_fields:
            overrides[("retention", field)] = value
        else:
            known = ", ".join([*LoraSpec.model_fields, *TrainSpec.model_fields, *RetentionSpec.model_fields])
            raise InvalidInput(f"unknown training setting {field!r}: use one of {known}")
    data = recipe.model_dump(exclude_unset=True) if recipe is not None else {}
    built, explicit = build_recipe(data, overrides, source="recipe")
    if recipe is not None:
        explicit |= set(recipe.lora.model_fields_set)
    return built, explicit
