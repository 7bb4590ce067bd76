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


def test_hashing_settings_are_parsed_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.from_env(
        {
            "TODO_HASH_CONCURRENCY": "3",
            "TODO_HASH_QUEUE": "0",
            "TODO_HASH_MAX_WAIT_MS": "250",
            "TODO_HASH_PRIORITY": "low",
            "TODO_HASH_PROCESSES": "false",
        }
    )
    assert (settings.hash_slots, settings.hash_queue, settings.hash_max_wait_ms) == (3, 0, 250)
    assert (settings.hash_priority, settings.hash_processes) == ("low", False)
    defaults = Settings()
    assert (defaults.hash_priority, defaults.hash_processes, defaults.bcrypt_rounds) == (
        "idle",
        True,
        12,
    )
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert Settings(workers=2).hash_slots == 4  # its share of the cores
    assert Settings(workers=16).hash_slots == 1
    for name, value in [
        ("TODO_HASH_PRIORITY", "realtime"),
        ("TODO_HASH_QUEUE", "-1"),
        ("TODO_HASH_MAX_WAIT_MS", "-5"),
        ("TODO_EDGE_HASH_CONCURRENCY", "-1"),
    ]:
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({name: value})


def test_production_refuses_the_placeholder_secret() -> None:
    with pytest.raises(ConfigError, match="TODO_JWT_SECRET must be set to a real secret"):
        Settings(environment="production")
    with pytest.raises(ConfigError, match="TODO_JWT_SECRET"):
        Settings.from_env({"TODO_ENV": "production"})
    assert Settings(environment="development").jwt_secret  # the placeholder is fine in dev


def test_commands_that_sign_no_token_may_skip_the_secret_check() -> None:
    settings = Settings.from_env({"TODO_ENV": "production"}, require_secrets=False)
    assert settings.environment == "production" and not settings.reflection_enabled


def test_a_secret_can_come_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "jwt_secret"
    secret.write_text("f" * 40 + "\n")
    url = tmp_path / "database_url"
    url.write_text("postgresql://todo:pw@postgres:5432/todo")
    empty = tmp_path / "previous"
    empty.write_text("")
    settings = Settings.from_env(
        {
            "TODO_ENV": "production",
            "TODO_JWT_SECRET_FILE": str(secret),
            "DATABASE_URL_FILE": str(url),
            "TODO_JWT_PREVIOUS_SECRET_FILE": str(empty),
        }
    )
    assert settings.jwt_secret == "f" * 40
    assert settings.database_url == "postgresql://todo:pw@postgres:5432/todo"
    assert settings.jwt_previous_secret is None


@pytest.mark.parametrize("both", [True, False])
def test_a_secret_file_must_be_readable_and_alone(tmp_path: Path, both: bool) -> None:
    env = {"TODO_JWT_SECRET_FILE": str(tmp_path / "missing")}
    if both:
        (tmp_path / "missing").write_text("x" * 40)
        env["TODO_JWT_SECRET"] = "y" * 40
    with pytest.raises(ConfigError, match="TODO_JWT_SECRET"):
        Settings.from_env(env)


@pytest.mark.parametrize("upstream", ["todo", "todo:", ":50051", "http://todo:50051"])
def test_envoy_upstreams_must_be_host_and_port(upstream: str) -> None:
    with pytest.raises(ConfigError, match="TODO_ENVOY_UPSTREAMS"):
        Settings.from_env({"TODO_ENVOY_UPSTREAMS": upstream})


def test_extra_cors_headers_and_development_tls() -> None:
    settings = Settings.from_env({"TODO_CORS_ALLOW_HEADERS": "X-Tenant, x-client-version,"})
    assert settings.cors_allow_headers == ("X-Tenant", "x-client-version")
    assert settings.dev_tls_enabled  # development without a certificate: on by default
    assert not Settings(dev_tls=False).dev_tls_enabled
    production = Settings(environment="production", jwt_secret="s" * 40)
    assert not production.dev_tls_enabled
    tls = Settings(tls_cert_file=Path("/c.pem"), tls_key_file=Path("/k.pem"))
    assert not tls.dev_tls_enabled  # a real certificate replaces it


def test_the_event_loop_is_asyncio_or_uvloop() -> None:
    assert Settings().event_loop == "asyncio"
    assert Settings.from_env({"TODO_EVENT_LOOP": "uvloop"}).event_loop == "uvloop"
    with pytest.raises(ConfigError):
        Settings.from_env({"TODO_EVENT_LOOP": "trio"})
