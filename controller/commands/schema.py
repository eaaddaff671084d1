"""Write protocols/schema.json from the models, or check that it is up to date."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="where to write (default protocols/schema.json)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")


def run(args: argparse.Namespace) -> int:
    from controller.schema import protocols_dir, schema_text

    out = args.out or protocols_dir() / "schema.json"
    text = schema_text()
    if args.check:
        current = out.read_text(encoding="utf-8") if out.exists() else ""
        if current != text:
            print(f"{out} is stale; run `heatcycler schema` to regenerate it", file=sys.stderr)
            return 1
        print(f"{out} is up to date")
        return 0
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0
