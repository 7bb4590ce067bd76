"""A stack started on a restored backup serves the same answers and honours every logout.

Two real stacks (`python -m server`, 2 workers + Envoy): the first on a fresh database,
where an account creates tasks, logs in twice and logs one session out; then `backup`,
`restore` into a new database, and a second stack on the restored one.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from server.cli import main
from tests.conftest import _with_dbname, temporary_database
from tests.e2e.conftest import WORKERS, running_stack

pytestmark = pytest.mark.e2e
PASSWORD = "correct horse battery"
ENV = {"TODO_USER_RATE_LIMIT": "0", "TODO_THROTTLE_PER_ADDRESS": "0"}


def _healthy(base: int) -> bool:
    return httpx.get(f"http://127.0.0.1:{base + WORKERS}/healthz", timeout=1).status_code == 200


@contextlib.contextmanager
def _stack(data: Path, database_url: str) -> Iterator[httpx.Client]:
    """A running stack on `database_url` and a REST client for its Envoy.

    On this shared machine another job can take one of the free ports between their choice
    and the bind; the stack then exits at once, and is started again on other ports.
    """
    for attempt in range(3):
        with contextlib.ExitStack() as resources:
            try:
                base = resources.enter_context(running_stack(data, database_url, ENV, _healthy))
            except RuntimeError as error:
                if "Address already in use" not in str(error) or attempt == 2:
                    raise
                continue
            rest = f"http://127.0.0.1:{base + WORKERS}"
            yield resources.enter_context(httpx.Client(base_url=rest, timeout=10))
            return


@pytest.fixture
def fresh_database(postgres_server_url: str) -> Iterator[str]:
    with temporary_database(postgres_server_url, prefix="todo_e2e_backup") as url:
        assert main.main(["migrate"], env={"DATABASE_URL": url}) == main.OK
        yield url


def _login(http: httpx.Client, email: str) -> dict[str, str]:
    response = http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def _answers(http: httpx.Client, token: str) -> dict[str, object]:
    """What a client sees of its account: a few REST reads, compared across the restore."""
    headers = {"authorization": f"Bearer {token}"}
    reads = {
        "me": "/api/v1/users/me",
        "tasks": "/api/v1/users/me/tasks?page_size=50",
        "open high": "/api/v1/users/me/tasks?completed=false&priority=PRIORITY_HIGH",
        "tags": "/api/v1/users/me/tags",
    }
    answers: dict[str, object] = {}
    for name, path in reads.items():
        response = http.get(path, headers=headers)
        assert response.status_code == 200, (name, response.text)
        answers[name] = response.json()
    return answers


def test_a_restored_stack_serves_the_same_answers(
    fresh_database: str, postgres_server_url: str, tmp_path: Path
) -> None:
    email = f"restore-{uuid.uuid4().hex[:8]}@example.com"
    (tmp_path / "a").mkdir()
    with _stack(tmp_path / "a", fresh_database) as http:
        created = http.post(
            "/api/v1/auth/register",
            json={"email": email, "password": PASSWORD, "name": "Restore"},
        )
        assert created.status_code == 201, created.text
        logged_out, kept = _login(http, email), _login(http, email)
        headers = {"authorization": f"Bearer {kept['access_token']}"}
        for i in range(12):
            task = {"title": f"task {i}", "priority": 3 if i % 2 else 2, "tags": [f"t{i % 3}"]}
            assert http.post("/api/v1/users/me/tasks", headers=headers, json=task).is_success
        bearer = {"authorization": f"Bearer {logged_out['access_token']}"}
        assert http.post("/api/v1/auth/logout", headers=bearer).status_code == 204
        before = _answers(http, kept["access_token"])

    backup = tmp_path / "todo.dump"
    assert main.main(["backup", str(backup)], env={"DATABASE_URL": fresh_database}) == main.OK
    name = f"todo_e2e_restored_{uuid.uuid4().hex[:10]}"
    restored = _with_dbname(postgres_server_url, name)
    assert main.main(["restore", str(backup)], env={"DATABASE_URL": restored}) == main.OK
    try:
        (tmp_path / "b").mkdir()
        with _stack(tmp_path / "b", restored) as http:
            assert _answers(http, kept["access_token"]) == before
            me = http.get("/api/v1/users/me", headers=bearer)
            assert me.status_code == 401, me.text  # logged out before the backup: still out
            refresh = {"refresh_token": logged_out["refresh_token"]}
            assert http.post("/api/v1/auth/refresh", json=refresh).status_code == 401
            renewed = http.post(
                "/api/v1/auth/refresh", json={"refresh_token": kept["refresh_token"]}
            )
            assert renewed.status_code == 200, renewed.text
            assert _login(http, email)["access_token"]
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
