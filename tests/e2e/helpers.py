from __future__ import annotations

from typing import Any

import httpx

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


def assert_error(
    response: httpx.Response,
    status: int,
    code: int,
    reason: str | None = None,
    fields: list[str] | None = None,
) -> dict[str, Any]:
    """Check an error answer: HTTP status, google.rpc.Status body, ErrorInfo and BadRequest."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code, body
    assert body["message"]
    assert "Traceback" not in response.text and "SELECT" not in response.text
    infos = [d for d in body.get("details", []) if d["@type"] == ERROR_INFO]
    assert len(infos) == 1, body
    if reason is not None:
        assert infos[0]["reason"] == reason, body
    if fields is not None:
        bad = [d for d in body["details"] if d["@type"] == BAD_REQUEST]
        assert bad, body
        assert sorted(v["field"] for v in bad[0]["field_violations"]) == sorted(fields), body
    return body
