"""JSON Schema of the files users write, exported from the pydantic models that validate them.

    python -m loraledger.schemas.export            # rewrite schemas/json/*.schema.json
    python -m loraledger.schemas.export --check    # exit 1 if a committed file is out of date

Editors use the files for completion and checking (YAML language server: a first line
``# yaml-language-server: $schema=<path>/recipe.schema.json``); a test keeps them equal to the models.
"""

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from loraledger.schemas.specs import Recipe

FOLDER = Path(__file__).resolve().parent / "json"
SCHEMAS: dict[str, type[BaseModel]] = {"recipe.schema.json": Recipe}
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_text(model: type[BaseModel]) -> str:
    schema = {"$schema": DIALECT, **model.model_json_schema(mode="validation")}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def export(folder: Path = FOLDER) -> list[Path]:
    """Write every schema file; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, model in SCHEMAS.items():
        path = folder / file_name
        path.write_text(schema_text(model))
        written.append(path)
    return written


def stale(folder: Path = FOLDER) -> list[Path]:
    """Schema files whose content differs from what the models export now."""
    return [
        folder / name
        for name, model in SCHEMAS.items()
        if not (folder / name).is_file() or (folder / name).read_text() != schema_text(model)
    ]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--check"]:
        out_of_date = stale()
        for path in out_of_date:
            print(f"out of date: {path} (run python -m loraledger.schemas.export)", file=sys.stderr)
        return 1 if out_of_date else 0
    if args:
        print("usage: python -m loraledger.schemas.export [--check]", file=sys.stderr)
        return 2
    for path in export():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
