"""Recipe files: YAML or JSON, validated against ``schemas.specs.Recipe`` (exported as JSON Schema)."""

import json
from pathlib import Path
from typing import Any

from loraledger.schemas.errors import InvalidInput


def load_recipe(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InvalidInput(f"recipe file not found: {path}")
    import yaml

    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{path}: not valid YAML/JSON: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: a recipe is a mapping with lora/training/eval sections")
    return data
