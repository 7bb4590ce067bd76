"""The command line without a database: parsing, help, exit codes, refusals, helpers."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from server import edge
from server.cli import main, pg_tools, seed
from server.cli.progress import Progress
from server.config import Settings

COMMANDS = [
    "serve",
    "migrate",
    "downgrade",
    "check",
    "seed",
    "backup",
    "restore",
    "check-health",
    "envoy-config",
    "edge",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main.main([command, "--help"], env={})
    assert exit_.value.code == 0
    assert f"python -m server {command}" in capsys.readouterr().out


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main.main(["--help"], env={})
    out = capsys.readouterr().out
    assert all(command in out for command in COMMANDS) and "Exit codes" in out


@pytest.mark.parametrize(
    "argv", [["frobnicate"], ["downgrade"], ["seed", "--users", "-1"], ["backup"]]
)
def test_bad_usage_exits_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main.main(argv, env={})
    assert exit_.value.code == main.USAGE


def test_serve_refuses_the_placeholder_secret_in_production(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main.main(["serve"], env={"TODO_ENV": "production"}) == main.USAGE
    assert "TODO_JWT_SECRET must be set to a real secret" in capsys.readouterr().err


def test_serve_is_the_default_command(capsys: pytest.CaptureFixture[str]) -> None:
    # The same refusal as `serve`: no arguments ran serve (which needs the key).
    assert main.main([], env={"TODO_ENV": "production"}) == main.USAGE
    assert "TODO_JWT_SECRET" in capsys.readouterr().err


def test_commands_that_sign_no_token_need_no_key(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"TODO_ENV": "production", "TODO_ENVOY_UPSTREAMS": "todo:50051"}
    assert main.main(["envoy-config"], env=env) == main.OK
    assert "todo" in capsys.readouterr().out


def test_seed_refuses_production(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"TODO_ENV": "production", "DATABASE_URL": "postgresql://127.0.0.1:1/none"}
    assert main.main(["seed"], env=env) == main.USAGE
    assert "--allow-production" in capsys.readouterr().err


def test_seed_refuses_a_bad_password(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"DATABASE_URL": "postgresql://127.0.0.1:1/none"}
    assert main.main(["seed", "--password", "short"], env=env) == main.USAGE


def test_backup_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    existing = tmp_path / "todo.dump"
    existing.write_bytes(b"an older backup")
    env = {"DATABASE_URL": "postgresql://127.0.0.1:1/none"}
    assert main.main(["backup", str(existing)], env=env) == main.FAILED
    assert "--force" in capsys.readouterr().err
    assert existing.read_bytes() == b"an older backup"
    assert main.main(["backup", str(tmp_path / "no" / "x.dump")], env=env) == main.FAILED


def test_restore_needs_an_existing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {"DATABASE_URL": "postgresql://127.0.0.1:1/none"}
    assert main.main(["restore", str(tmp_path / "missing.dump")], env=env) == main.FAILED
    assert "does not exist" in capsys.readouterr().err


def test_a_bad_setting_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["check"], env={"TODO_WORKERS": "many"}) == main.USAGE
    assert "TODO_WORKERS" in capsys.readouterr().err


def test_envoy_config_renders_dns_upstreams(tmp_path: Path) -> None:
    out = tmp_path / "envoy.yaml"
    argv = ["envoy-config", "--upstream", "todo:50051", "--upstream", "todo:50052", "-o", str(out)]
    assert main.main(argv, env={"TODO_DATA_DIR": str(tmp_path)}) == main.OK
    config = out.read_text()
    assert (
        'type: "STRICT_DNS"' in config
        and '"address": "127.0.0.1", "port_value": 5005' not in config
    )
    assert config.count('"address": "todo"') == 2
    checked = subprocess.run(
        [edge.envoy_binary(), "--mode", "validate", "-c", str(out), "--log-level", "error"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_upstreams_default_to_the_local_processes() -> None:
    settings = Settings(grpc_host="0.0.0.0", grpc_port=7000, workers=2)
    assert edge.upstream_addresses(settings) == [("127.0.0.1", 7000), ("127.0.0.1", 7001)]
    named = Settings(envoy_upstreams=("todo:50051", "[::1]:7000"))
    assert edge.upstream_addresses(named) == [("todo", 50051), ("::1", 7000)]


def test_progress_prints_tenths_when_not_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress("rows", 100, "rows", stream=stream)
    for _ in range(100):
        progress.advance()
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert 10 <= len(lines) <= 12
    assert lines[-1].startswith("rows [" + "#" * 30 + "] 100/100 rows")


def test_progress_of_nothing_is_complete() -> None:
    stream = io.StringIO()
    Progress("tasks", 0, stream=stream).finish()
    assert "0/0" in stream.getvalue() and "#" * 30 in stream.getvalue()


def test_seed_batches_cover_each_missing_range_once() -> None:
    users = [
        ("00000000-0000-4000-8000-000000000001", 0),
        ("00000000-0000-4000-8000-000000000002", 7),
    ]
    batches = list(seed._batches(users, seed.CHUNK + 10))
    assert all(sum(b - a + 1 for _, a, b in batch) <= seed.CHUNK for batch in batches)
    covered: dict[str, list[int]] = {}
    for batch in batches:
        for user, start, stop in batch:
            covered.setdefault(str(user), []).extend(range(start, stop + 1))
    assert covered[users[0][0]] == list(range(1, seed.CHUNK + 11))
    assert covered[users[1][0]] == list(range(8, seed.CHUNK + 11))


def _fake_tool(folder: Path, name: str, version: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / name
    script.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) {version}'\n")
    script.chmod(0o755)


def test_pg_tools_need_at_least_the_servers_version(tmp_path: Path) -> None:
    _fake_tool(tmp_path / "15", "pg_dump", "15.13 (Debian 15.13-0+deb12u1)")
    assert pg_tools.find("pg_dump", 15, tmp_path / "15").major == 15
    assert pg_tools.find("pg_dump", 14, tmp_path / "15").major == 15
    with pytest.raises(pg_tools.ToolError, match=r"pg_dump 18 or later .*\(15\)"):
        pg_tools.find("pg_dump", 18, tmp_path / "15")
    with pytest.raises(pg_tools.ToolError, match="none found"):
        pg_tools.find("pg_dump", 18, tmp_path / "empty")


def test_pg_tools_keep_the_password_off_the_command_line() -> None:
    dbname, env = pg_tools.connection_args("postgresql://todo:s3cret@db.example.com:5433/todo")
    assert "s3cret" not in dbname and env["PGPASSWORD"] == "s3cret"
    assert "host=db.example.com" in dbname and "port=5433" in dbname
