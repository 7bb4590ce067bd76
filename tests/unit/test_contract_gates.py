"""The proto gates can fail: buf lint's comment rules and buf breaking against the baseline.

Each test copies protos/ and buf.yaml to a temporary workspace, changes one
thing, and runs buf as `make buf-lint` / `make buf-breaking` do.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUF = REPO / ".tools" / "node_modules" / ".bin" / "buf"
BASELINE = REPO / "protos" / "baseline.binpb"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    if not BUF.exists() or not (REPO / "third_party" / "googleapis" / "google" / "api").exists():
        pytest.skip("needs buf and third_party/googleapis: run `make buf-lint` (npm) first")
    shutil.copytree(REPO / "protos" / "todo", tmp_path / "protos" / "todo")
    shutil.copy(REPO / "buf.yaml", tmp_path / "buf.yaml")
    (tmp_path / "third_party").symlink_to(REPO / "third_party")
    return tmp_path


def _buf(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUF), *args], cwd=workspace, capture_output=True, text=True, timeout=60
    )


def _breaking(workspace: Path) -> subprocess.CompletedProcess[str]:
    built = _buf(workspace, "build", "--exclude-source-info", "-o", "current.binpb")
    assert built.returncode == 0, built.stderr
    return _buf(workspace, "breaking", "current.binpb", "--against", str(BASELINE))


def _edit(workspace: Path, name: str, old: str, new: str) -> None:
    path = workspace / "protos" / "todo" / "v1" / name
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_the_protos_as_committed_pass_both_gates(workspace: Path) -> None:
    assert _buf(workspace, "lint").returncode == 0
    result = _breaking(workspace)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_renumbered_field_breaks_the_wire(workspace: Path) -> None:
    _edit(workspace, "task.proto", "string title = 3;", "string title = 30;")
    result = _breaking(workspace)
    assert result.returncode == 100
    assert 'field "3" with name "title"' in result.stdout


def test_a_json_name_change_breaks_json(workspace: Path) -> None:
    _edit(workspace, "task.proto", "string title = 3;", 'string title = 3 [json_name = "name"];')
    result = _breaking(workspace)
    assert result.returncode == 100
    assert 'changed option "json_name"' in result.stdout


@pytest.mark.parametrize(
    ("old", "rule"),
    [
        ("  // 1 to 200 characters after trimming.\n", "COMMENT_FIELD"),
        ("// Task is one item on a user's list.\n", "COMMENT_MESSAGE"),
    ],
)
def test_an_undocumented_field_or_message_fails_lint(workspace: Path, old: str, rule: str) -> None:
    _edit(workspace, "task.proto", old, "")
    result = _buf(workspace, "lint", "--error-format", "json")
    assert result.returncode == 100
    assert rule in result.stdout
