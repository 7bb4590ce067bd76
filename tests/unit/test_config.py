from __future__ import annotations

from pathlib import Path

import pytest

from server.config import ConfigError, Settings


def test_defaults_are_documented_values() -> None:
    settings = Settings()
    assert (settings.user_rate_limit, settings.user_rate_burst) == (600, 100)
    assert settings.throttle_period_s == 600
    assert (
        settings.throttle_per_address,
        settings.throttle_per_account_address,
        settings.throttle_per_account,
    ) == (300, 10, 50)
    assert settings.cors_origins == () and not settings.tls_enabled


def test_environment_values_are_parsed() -> None:
    settings = Settings.from_env(
        {
            "TODO_CORS_ORIGINS": "https://app.example.com, http://localhost:3000,",
            "TODO_TLS_CERT_FILE": "/etc/tls/cert.pem",
            "TODO_TLS_KEY_FILE": "/etc/tls/key.pem",
            "TODO_JWT_PREVIOUS_SECRET": "p" * 40,
            "TODO_REFLECTION": "no",
            "TODO_USER_RATE_LIMIT": "0",
        }
    )
    assert settings.cors_origins == ("https://app.example.com", "http://localhost:3000")
    assert settings.tls_cert_file == Path("/etc/tls/cert.pem") and settings.tls_enabled
    assert settings.jwt_previous_secret == "p" * 40
    assert settings.reflection is False and not settings.reflection_enabled
    assert settings.user_rate_limit == 0


def test_reflection_is_off_in_production_unless_enabled() -> None:
    secret = "s" * 40
    assert Settings().reflection_enabled
    assert not Settings(environment="production", jwt_secret=secret).reflection_enabled
    assert Settings(environment="production", jwt_secret=secret, reflection=True).reflection_enabled


@pytest.mark.parametrize(
    "env",
    [
        {"TODO_CORS_ORIGINS": "*"},
        {"TODO_CORS_ORIGINS": "https://app.example.com/"},
        {"TODO_CORS_ORIGINS": "app.example.com"},
        {"TODO_TLS_CERT_FILE": "/etc/tls/cert.pem"},
        {"TODO_JWT_PREVIOUS_SECRET": "short"},
        {"TODO_THROTTLE_PER_ADDRESS": "-1"},
        {"TODO_USER_RATE_BURST": "0"},
        {"TODO_MAX_REQUEST_HEADERS_KB": "0"},
        {"TODO_REFLECTION": "maybe"},
        {"TODO_CORS_ALLOW_HEADERS": "x-ok, bad header"},
        {"TODO_CORS_ALLOW_HEADERS": "x-tenant:1"},
        {"TODO_DEV_TLS": "true", "TODO_ENV": "production", "TODO_JWT_SECRET": "s" * 40},
        {"TODO_DEV_TLS": "true", "TODO_TLS_CERT_FILE": "/c.pem", "TODO_TLS_KEY_FILE": "/k.pem"},
    ],
)
def test_bad_values_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(env)


def test_the_previous_key_must_differ() -> None:
    with pytest.raises(ConfigError):
        Settings(jwt_secret="k" * 40, jwt_previous_secret="k" * 40)


def test_extra_cors_headers_and_development_tls() -> None:
    settings = Settings.from_env({"TODO_CORS_ALLOW_HEADERS": "X-Tenant, x-client-version,"})
    assert settings.cors_allow_headers == ("X-Tenant", "x-client-version")
    assert settings.dev_tls_enabled  # development without a certificate: on by default
    assert not Settings(dev_tls=False).dev_tls_enabled
    production = Settings(environment="production", jwt_secret="s" * 40)
    assert not production.dev_tls_enabled
    tls = Settings(tls_cert_file=Path("/c.pem"), tls_key_file=Path("/k.pem"))
    assert not tls.dev_tls_enabled  # a real certificate replaces it
