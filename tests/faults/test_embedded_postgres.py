"""The embedded PostgreSQL of `make run` never outlives the launcher, nor is quietly joined."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.db import embedded
from tests.e2e.conftest import WORKERS, register_and_login, running_stack
from tests.faults.conftest import wait_for

pytestmark = pytest.mark.faults


def _healthy(base: int) -> bool:
    return httpx.get(f"http://127.0.0.1:{base + WORKERS}/healthz", timeout=1).status_code == 200


def _serves(base: int) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{base + WORKERS}", timeout=10) as http:
        wait_for(lambda: _healthy(base), timeout=30)
        register_and_login(http)


def _running(folder: Path) -> bool:
    return embedded.pg_ctl(folder, "status").returncode == 0


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data folder the embedded server's OS user can reach (pytest's tmp_path is 0700)."""
    parent = Path(tempfile.mkdtemp(prefix="todo-faults-data-"))
    parent.chmod(0o755)
    try:
        yield parent
    finally:
        if _running(parent / "pg"):
            embedded.stop(parent / "pg")
        shutil.rmtree(parent, ignore_errors=True)


def test_restarted_behind_its_back_it_still_stops_and_a_leftover_is_not_joined(
    data_dir: Path,
) -> None:
    tmp_path = data_dir
    folder = tmp_path / "pg"
    env = {"TODO_THROTTLE_PER_ADDRESS": "0", "TODO_LOG_LEVEL": "INFO"}
    with running_stack(tmp_path, "", env, _healthy) as base:  # no DATABASE_URL: embedded
        assert _running(folder)
        restarted = embedded.pg_ctl(folder, "-w", "-m", "fast", "restart")
        assert restarted.returncode == 0, restarted.stdout
        _serves(base)
    assert not _running(folder), "Ctrl-C left the restarted PostgreSQL running"

    # A leftover (as if the launcher had been killed): started by hand, held by no one.
    started = embedded.pg_ctl(
        folder, "-w", "-o", '-h "" -k ' + str(folder), "-l", str(folder / "log"), "start"
    )
    assert started.returncode == 0, started.stdout
    leftover = (folder / "postmaster.pid").read_text().split()[0]
    (tmp_path / "stack.log").unlink()
    with running_stack(tmp_path, "", env, _healthy) as base:
        _serves(base)
        assert (folder / "postmaster.pid").read_text().split()[0] != leftover
    log = (tmp_path / "stack.log").read_text()
    assert "left running" in log and "stopping it" in log
    assert not _running(folder)
