"""The JSON Schema of protocol files, generated from the models (protocols/schema.json).

Editors pick it up through ``# yaml-language-server: $schema=schema.json`` at the top of
a protocol file, and autocomplete keys and units from it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from controller.protocol import Protocol


def protocol_schema() -> dict[str, Any]:
    schema = Protocol.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def schema_text() -> str:
    return json.dumps(protocol_schema(), indent=2, ensure_ascii=False) + "\n"


def protocols_dir() -> Path:
    """The bundled protocol library: the repo's protocols/, or its installed copy."""
    repo = Path(__file__).resolve().parent.parent / "protocols"
    if repo.is_dir():
        return repo
    return Path(__file__).resolve().parent / "_bundled" / "protocols"
