"""The rendered Envoy configuration: TLS, HSTS, CORS, header limit, gzip."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from server import edge
from server.config import ConfigError, Settings


def _render(**overrides: object) -> str:
    return edge.render_envoy_config(Settings(**overrides))  # type: ignore[arg-type]


def test_plain_http_by_default() -> None:
    config = _render()
    assert "transport_socket: null" in config
    assert "strict-transport-security" not in config
    assert "allow_origin_string_match: []" in config
    assert "max_request_headers_kb: 32" in config
    assert "min_content_length: 1024" in config


def test_cors_origins_come_from_settings() -> None:
    config = _render(cors_origins=("https://app.example.com",))
    expected = json.dumps([{"exact": "https://app.example.com"}])
    assert f"allow_origin_string_match: {expected}" in config


def test_tls_adds_the_certificate_and_hsts(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("cert")
    key.write_text("key")
    config = _render(tls_cert_file=cert, tls_key_file=key)
    assert "DownstreamTlsContext" in config and str(cert) in config and str(key) in config
    assert f'"value": "{edge.HSTS}"' in config


def test_missing_tls_files_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        _render(tls_cert_file=tmp_path / "nope.pem", tls_key_file=tmp_path / "nope.key")


@pytest.mark.parametrize("tls", [False, True])
def test_envoy_accepts_the_configuration(tmp_path: Path, tls: bool) -> None:
    overrides: dict[str, object] = {"cors_origins": ("https://app.example.com",)}
    if tls:
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        command = [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)),
        ]
        subprocess.run(command, check=True, capture_output=True)
        overrides |= {"tls_cert_file": cert, "tls_key_file": key}
    path = tmp_path / "envoy.yaml"
    path.write_text(_render(**overrides))
    result = subprocess.run(
        [edge.envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "error"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
