"""Files shipped inside the `server` package: the Alembic scripts and the Envoy edge.

They are package data (see `[tool.setuptools.package-data]` in pyproject.toml), so the
same lookup works in the source tree, in an editable install and in an installed wheel,
whatever the current directory.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def resource_path(*parts: str) -> Path:
    """The file or folder `parts` inside the installed `server` package.

    Args:
        *parts: Path components below the package, e.g. `("envoy", "envoy.yaml")`.

    Returns:
        A real filesystem path (Alembic and Envoy read the files themselves).

    Raises:
        FileNotFoundError: The resource is missing, or the package is not installed as
            plain files (a zipped install cannot hand Envoy a file name).
    """
    found = resources.files("server").joinpath(*parts)
    if not isinstance(found, Path) or not found.exists():
        raise FileNotFoundError(f"server package resource {'/'.join(parts)} not found")
    return found


def migrations_dir() -> Path:
    """Alembic's script location (`server/migrations`)."""
    return resource_path("migrations")


def envoy_template() -> Path:
    """The Envoy configuration template that `server.edge` fills."""
    return resource_path("envoy", "envoy.yaml")


def descriptor_set() -> Path:
    """The protobuf descriptor set Envoy's gRPC-JSON transcoder reads (`make generate`)."""
    return resource_path("envoy", "todo.binpb")
