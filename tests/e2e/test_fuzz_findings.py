"""Regression tests for what schemathesis (tests/e2e/test_fuzz.py) found, one per finding."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.conftest import Account

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("name", ["~bs#k", "c4|cek.0f2xwbj-ieu~f", "x!y", "a&b", "Upper-Case_ok"])
def test_a_header_name_that_cannot_be_grpc_metadata_is_ignored(
    http: httpx.Client, alice: Account, name: str
) -> None:
    # Was 500 "Illegal header key": Envoy forwarded it and the server's gRPC core refused
    # the call. Envoy now drops such headers (RFC 9110 allows them; gRPC metadata does not).
    answer = http.get("/api/v1/users/me", headers={**alice.headers, name: "x"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == alice.user_id
    anonymous = http.get("/api/v1/users/me", headers={name: "x"})
    assert anonymous.status_code == 401


def test_a_patch_without_a_body_changes_nothing(http: httpx.Client, alice: Account) -> None:
    # The document says the body is optional; schemathesis checked Envoy agrees.
    task = http.post("/api/v1/users/me/tasks", headers=alice.headers, json={"title": "t"}).json()
    answer = http.patch(f"/api/v1/users/me/tasks/{task['id']}", headers=alice.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["title"] == "t"
