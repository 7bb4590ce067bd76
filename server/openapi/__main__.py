"""`python -m server.openapi [DIR]`: write DIR/openapi.json and DIR/openapi.yaml.

DIR defaults to `server/docs/`, where Envoy serves them from (`/openapi.json`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from server.openapi import document


def main(argv: list[str]) -> int:
    """Generate the document from server/envoy/todo.binpb and write both files."""
    out = Path(argv[0]) if argv else document.REPO / "server" / "docs"
    out.mkdir(parents=True, exist_ok=True)
    doc = document.generate()
    (out / "openapi.json").write_text(document.to_json(doc), encoding="utf-8")
    (out / "openapi.yaml").write_text(document.to_yaml(doc), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
