"""Schemathesis against the running stack through Envoy, driven by server/docs/openapi.json.

Every operation but those that would end the run's own session (logout, password change,
account deletion) and the endless watch stream, authenticated as a fresh account, in all
four phases (examples, coverage, fuzzing, stateful through the document's links). Checks
(tests/fuzz/schemathesis.toml): no 5xx, only documented statuses, content types, headers and
bodies as documented (NDJSON line by line), auth enforced where documented, a deleted task
stays gone, a created one can be read, and no traceback or SQL in any body.

In `make test` the run is bounded (TODO_FUZZ_EXAMPLES=10 per operation, seed fixed, about
a minute and a half on an idle 2-core box); `make fuzz` runs it with more examples. The report
(JUnit XML) goes to test-artifacts/schemathesis/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.browser import artifact_dir
from tests.e2e.conftest import Stack, register_and_login

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("TODO_FUZZ_EXAMPLES", "10"))
SEED = int(os.environ.get("TODO_FUZZ_SEED", "20261130"))


def test_schemathesis_finds_nothing(stack: Stack, http: httpx.Client) -> None:
    account = register_and_login(http)
    reports = artifact_dir() / "schemathesis"
    command = [
        str(Path(sys.executable).parent / "st"),
        "--config-file",
        str(REPO / "tests" / "fuzz" / "schemathesis.toml"),
        "run",
        str(REPO / "server" / "docs" / "openapi.json"),
        "--url",
        stack.rest,
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        str(reports),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "TODO_FUZZ_BASE_URL": stack.rest,
        "TODO_FUZZ_EMAIL": account.email,
        "TODO_FUZZ_PASSWORD": account.password,
    }
    result = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    (reports / "output.txt").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-4000:]
    assert "Operations:       20 selected / 24 total" in result.stdout
