"""Settings: the one place that reads the environment.

Every field has a default fit for `make run` on a laptop. `Settings.from_env()`
reads the `TODO_*` variables (and `DATABASE_URL`), checks them, and returns a
frozen object that the composition root passes down. Nothing else in the
server reads `os.environ`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

PLACEHOLDER_SECRET = "dev-only-secret-change-me-0123456789abcdef"
Environment = Literal["development", "production"]


class ConfigError(ValueError):
    """A setting is missing, malformed or unsafe."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Configuration of the server processes, the database and the edge."""

    environment: Environment = "development"
    """`development` or `production`; production refuses the placeholder JWT secret."""

    database_url: str | None = None
    """PostgreSQL URL (`postgresql://user@host:port/db`). None starts the embedded PostgreSQL."""

    data_dir: Path = Path(".data")
    """Folder for the embedded PostgreSQL's data and the rendered Envoy config."""

    grpc_host: str = "127.0.0.1"
    """Address the server processes bind to."""

    grpc_port: int = 50051
    """Port of worker 0; worker i listens on grpc_port + i."""

    workers: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    """Number of server processes (default: one per core)."""

    start_envoy: bool = True
    """Whether `python -m server` also starts Envoy in front of the workers."""

    envoy_host: str = "127.0.0.1"
    """Address Envoy serves REST and gRPC on."""

    envoy_port: int = 8080
    """Port Envoy serves REST and gRPC on."""

    envoy_admin_port: int = 9901
    """Port of Envoy's admin interface, always bound to 127.0.0.1."""

    jwt_secret: str = PLACEHOLDER_SECRET
    """HS256 signing key, at least 32 characters."""

    jwt_issuer: str = "todo-service"
    """`iss` claim written into and required from every token."""

    jwt_audience: str = "todo-api"
    """`aud` claim written into and required from every token."""

    access_token_ttl_s: int = 900
    """Lifetime of an access token in seconds."""

    refresh_token_ttl_s: int = 30 * 24 * 3600
    """Lifetime of a refresh token (and its session) in seconds."""

    bcrypt_rounds: int = 12
    """bcrypt cost factor (4 to 31)."""

    db_pool_min: int = 2
    """Connections each server process keeps open."""

    db_pool_max: int = 10
    """Most connections each server process opens."""

    log_level: str = "INFO"
    """Python logging level name."""

    reflection: bool = True
    """Whether gRPC server reflection is served."""

    grace_period_s: float = 5.0
    """How long a stopping worker lets in-flight calls finish."""

    def __post_init__(self) -> None:
        if self.environment not in ("development", "production"):
            raise ConfigError(
                f"TODO_ENV must be development or production, not {self.environment!r}"
            )
        if len(self.jwt_secret) < 32:
            raise ConfigError("TODO_JWT_SECRET must be at least 32 characters")
        if self.environment == "production" and self.jwt_secret == PLACEHOLDER_SECRET:
            raise ConfigError("TODO_JWT_SECRET must be set to a real secret in production")
        if not 4 <= self.bcrypt_rounds <= 31:
            raise ConfigError("TODO_BCRYPT_ROUNDS must be between 4 and 31")
        if self.workers < 1:
            raise ConfigError("TODO_WORKERS must be at least 1")
        if not 1 <= self.db_pool_min <= self.db_pool_max:
            raise ConfigError("need 1 <= TODO_DB_POOL_MIN <= TODO_DB_POOL_MAX")
        if self.access_token_ttl_s <= 0 or self.refresh_token_ttl_s <= 0:
            raise ConfigError("token lifetimes must be positive")

    def worker_ports(self) -> list[int]:
        """The port of every server process, worker 0 first."""
        return [self.grpc_port + i for i in range(self.workers)]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables (see the README's table)."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            name = "DATABASE_URL" if field.name == "database_url" else _env_name(field.name)
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            values[field.name] = _parse(name, raw, field.type)
        return cls(**values)  # type: ignore[arg-type]


def _env_name(field_name: str) -> str:
    return "TODO_ENV" if field_name == "environment" else "TODO_" + field_name.upper()


def _parse(name: str, raw: str, type_name: object) -> object:
    kind = str(type_name)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if raw.lower() not in ("1", "true", "yes", "0", "false", "no"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes")
        if kind == "Path":
            return Path(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind}") from None
    return raw
