"""Settings: the one place that reads the environment.

Every field has a default fit for `make run` on a laptop. `Settings.from_env()`
reads the `TODO_*` variables (and `DATABASE_URL`), checks them, and returns a
frozen object that the composition root passes down. Nothing else in the
server reads `os.environ`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

PLACEHOLDER_SECRET = "dev-only-secret-change-me-0123456789abcdef"
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
_UPSTREAM = re.compile(r"^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):[0-9]{1,5}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")  # an RFC 9110 token
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

    migrate_on_start: bool = True
    """Whether `serve` applies the migrations before starting. False (several replicas with a
    one-shot `migrate` job, as in docker-compose.yml): `serve` refuses to start unless the
    database is already at the latest revision."""

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

    envoy_upstreams: tuple[str, ...] = ()
    """`host:port` of each server process Envoy sends calls to, comma-separated in
    `TODO_ENVOY_UPSTREAMS`. A host name is resolved by DNS and every address it returns is
    an endpoint (`todo:50051` reaches every replica of a compose service). Empty: the
    processes `serve` starts (`grpc_host` with each of `worker_ports()`)."""

    edge_hash_concurrency: int = 0
    """Register and Login calls Envoy lets through to the server processes at once; it
    refuses any more itself, as a full process would (429 PASSWORD_CHECKS_BUSY). 0: each
    upstream is one process taking `hash_slots` + `hash_queue`. Set it when a host name in
    `envoy_upstreams` stands for several processes: their number x (slots + queue)."""

    jwt_secret: str = PLACEHOLDER_SECRET
    """HS256 key that signs new tokens, at least 32 characters."""

    jwt_previous_secret: str | None = None
    """The key before the last rotation: tokens it signed are still accepted (by their `kid`)
    until they expire. Set it to the old `jwt_secret` when rotating; unset it after the
    refresh-token lifetime. None: only the current key is accepted."""

    jwt_issuer: str = "todo-service"
    """`iss` claim written into and required from every token."""

    jwt_audience: str = "todo-api"
    """`aud` claim written into and required from every token."""

    access_token_ttl_s: int = 900
    """Lifetime of an access token in seconds."""

    refresh_token_ttl_s: int = 30 * 24 * 3600
    """Lifetime of a refresh token (and its session) in seconds."""

    revocation_barrier_timeout_s: float = 2.0
    """Longest a revoking call (logout, refresh reuse, password change, account deletion)
    waits for every server process to acknowledge the revocation before answering anyway
    (0: does not wait, as before the barrier existed)."""

    bcrypt_rounds: int = 12
    """bcrypt cost factor (4 to 31)."""

    hash_concurrency: int = 0
    """Password hashes (register, login, change password) one server process runs at once,
    each on its own low-priority thread; 0: the cores divided by `workers`, at least 1
    (see `hash_slots`)."""

    hash_queue: int = 2
    """Hashes that may wait for a free slot in one server process; any more are refused at
    once (429 PASSWORD_CHECKS_BUSY with Retry-After), whatever the password."""

    hash_max_wait_ms: int = 500
    """Longest a hash waits in that queue before it is refused the same way."""

    hash_priority: Literal["idle", "low", "normal"] = "idle"
    """CPU priority of the hashing threads (Linux schedules each thread by its own):
    `idle` (SCHED_IDLE: they get only CPU no other thread wants, and give it up the
    moment a request needs it), `low` (niceness 19) or `normal` (the request path's)."""

    hash_processes: bool = True
    """Hash in `hash_slots` child processes of each server process (spawned on first
    use) rather than threads: a low-priority thread that the kernel holds back while it
    owns Python's GIL would stall the request path too; a process shares no GIL. With a
    priority below `normal`, each child also starts its own session, whose autogroup it
    makes nice 19, so hashing does not spend the server's own share of a busy machine."""

    hash_cpu_quota: bool = True
    """With `hash_processes` at priority `idle`: the launcher puts every hashing process in
    one idle cpu cgroup of its own (`cpu.idle`: any woken request preempts a hasher at
    once; else at the lowest weight), and keeps its CPU quota at the cores
    the machine leaves idle without hashing (measured every 5 s with hashing paused for
    0.4 s; raised only after two such readings), so a login flood gets the idle CPU and no
    more. Needs a writable cpu cgroup
    (root, or systemd's `Delegate=yes`); without one, hashing is idle-priority only."""

    hash_cpu_affinity: bool = True
    """With that cgroup: the launcher also keeps the hashing processes on as few CPUs as
    their quota needs (at least one, the highest-numbered), so that the other CPUs never run
    a hasher and pull waiting request work at once when they fall idle."""

    hash_cgroup: str = ""
    """Set by the launcher for its workers: the folder of that cgroup ("" when none)."""

    db_pool_min: int = 2
    """Connections each server process keeps open."""

    db_pool_max: int = 10
    """Most connections each server process opens."""

    db_acquire_timeout_s: float = 5.0
    """How long a call waits for a free pooled connection when all are busy before it is
    refused with UNAVAILABLE (503), reason DATABASE_BUSY. While the database is down calls
    do not wait at all: they fail at once with reason DATABASE_UNAVAILABLE."""

    log_level: str = "INFO"
    """Python logging level name."""

    event_loop: str = "asyncio"
    """Each server process's event loop: `asyncio` (the standard library's) or `uvloop`
    (libuv's; `make bench` measured 10-20% less server CPU per read, see the README's
    Performance section)."""

    log_format: str | None = None
    """`json` (one JSON object per line) or `console` (readable lines, same fields).
    None (unset): json in production, console in development (`make run`)."""

    metrics_host: str = "127.0.0.1"
    """Address of the Prometheus scrape endpoint (`/metrics`), served by the launcher process
    for all the server processes together; never the public API port."""

    metrics_port: int = 9464
    """Port of the Prometheus scrape endpoint; 0 turns metrics exposition off."""

    otlp_endpoint: str | None = None
    """OTLP/gRPC collector (`http://127.0.0.1:4317`) that receives the server's and Envoy's
    spans. None: traces are neither recorded nor exported (ids are still propagated)."""

    build_commit: str = ""
    """The source commit of this build, shown in `todo_build_info`. Empty: the launcher asks
    git (`make run`), else `unknown`."""

    trace_sample_percent: float = 10.0
    """With `otlp_endpoint`: the percentage of requests traced (head sampling; 10 by default:
    tracing every call costs about a third of a get-task's CPU, see the README). Envoy decides
    for calls through it, by its own draw (a client's trace id is continued, its sampled flag
    is not honoured), and the server follows Envoy's `traceparent` sampled flag; for direct
    gRPC calls the server follows the caller's flag, or draws itself when there is none."""

    envoy_access_log: Path | None = None
    """File Envoy writes its JSON access log to. None: stdout in production, else
    `data_dir/envoy-access.log`."""

    reflection: bool | None = None
    """Whether gRPC server reflection is served. None (unset): on, except in production."""

    grace_period_s: float = 5.0
    """How long a stopping worker lets in-flight calls finish."""

    drain_delay_s: float = 3.0
    """How long a stopping worker keeps taking calls after turning NOT_SERVING, so that
    Envoy's health checks (every second, two failures to mark it down) stop routing to it
    first: then no call is refused. Set it to 0 when no Envoy is in front."""

    watch_heartbeat_s: float = 30.0
    """Idle watch streams get a HEARTBEAT event this often (below Envoy's 5 min idle timeout)."""

    change_retention_s: int = 7 * 24 * 3600
    """How long task changes are kept for watch resume tokens (older: RESYNC_REQUIRED)."""

    user_rate_limit: int = 600
    """Requests per minute one user may make over both wires. Envoy sends all of a user's
    calls to one server process (consistent hashing on the token's subject), whose bucket
    holds the whole limit; 0 turns the per-user limit off (and Envoy balances round robin).
    Public calls (register, login, refresh, health) are not counted."""

    user_rate_burst: int = 100
    """Requests one user may make at once before `user_rate_limit` paces them (the
    bucket's size)."""

    throttle_period_s: int = 600
    """Period of the register/login/refresh (and change-password) throttles: each key
    below allows its number of attempts at once, then one more every
    `throttle_period_s / number` seconds. Kept in PostgreSQL, so shared by every process."""

    throttle_per_address: int = 300
    """Attempts per period from one client address, whatever the account; 0: no limit."""

    throttle_per_account_address: int = 10
    """Attempts per period on one account (email, or user for refresh) from one client
    address: stops one attacker early without locking the owner out elsewhere; 0: no limit."""

    throttle_per_account: int = 50
    """Attempts per period on one account from all addresses together (looser: bounds a
    distributed attack); 0: no limit."""

    cors_origins: tuple[str, ...] = ()
    """Browser origins allowed by CORS, exact (`https://app.example.com`); comma-separated
    in `TODO_CORS_ORIGINS`. Empty: no CORS headers (browsers on other origins are refused)."""

    cors_allow_headers: tuple[str, ...] = ()
    """Request headers a browser may send cross-origin, on top of the built-in list
    (`server/edge.py` CORS_ALLOW_HEADERS: authorization, content-type, the W3C trace context
    `traceparent`, `tracestate`, `baggage`, the B3, Sentry and Datadog tracing headers,
    X-Requested-With, Cache-Control and the other common ones); comma-separated in
    `TODO_CORS_ALLOW_HEADERS`. Only takes effect with `cors_origins`."""

    tls_cert_file: Path | None = None
    """PEM certificate chain for Envoy's listener; with `tls_key_file`, Envoy serves HTTPS
    (and gRPC over TLS) and sends Strict-Transport-Security. None: plain HTTP."""

    tls_key_file: Path | None = None
    """PEM private key matching `tls_cert_file`."""

    dev_tls: bool | None = None
    """Development only: Envoy's port also accepts HTTPS (HTTP/2 for browsers, which open
    at most 6 HTTP/1.1 connections per host) with a self-signed certificate for localhost
    made at first start in `data_dir/tls/`, beside plain HTTP/1.1 and h2c on the same port.
    None (unset): on in development unless `tls_cert_file` is set; refused in production."""

    max_request_headers_kb: int = 32
    """Largest request header block Envoy accepts, in KiB (431 over it; 1 to 8192)."""

    gzip_min_bytes: int = 1024
    """REST JSON responses at least this large are gzip-compressed for clients that
    send `Accept-Encoding: gzip` (auth responses never are)."""

    require_secrets: dataclasses.InitVar[bool] = True
    """Whether to refuse the placeholder JWT secret in production (at construction only, not
    a field). Commands that never sign or verify a token (`migrate`, `backup`, `edge`, ...)
    pass False, so a migration job or the Envoy container needs no signing key."""

    def __post_init__(self, require_secrets: bool) -> None:
        if self.environment not in ("development", "production"):
            raise ConfigError(
                f"TODO_ENV must be development or production, not {self.environment!r}"
            )
        if len(self.jwt_secret) < 32:
            raise ConfigError("TODO_JWT_SECRET must be at least 32 characters")
        placeholder = self.jwt_secret == PLACEHOLDER_SECRET
        if require_secrets and self.environment == "production" and placeholder:
            raise ConfigError("TODO_JWT_SECRET must be set to a real secret in production")
        if not 4 <= self.bcrypt_rounds <= 31:
            raise ConfigError("TODO_BCRYPT_ROUNDS must be between 4 and 31")
        self._check_hashing()
        if self.workers < 1:
            raise ConfigError("TODO_WORKERS must be at least 1")
        if not 1 <= self.db_pool_min <= self.db_pool_max:
            raise ConfigError("need 1 <= TODO_DB_POOL_MIN <= TODO_DB_POOL_MAX")
        if self.db_acquire_timeout_s <= 0 or self.drain_delay_s < 0 or self.grace_period_s < 0:
            raise ConfigError(
                "TODO_DB_ACQUIRE_TIMEOUT_S must be positive, TODO_DRAIN_DELAY_S and "
                "TODO_GRACE_PERIOD_S not negative"
            )
        if self.access_token_ttl_s <= 0 or self.refresh_token_ttl_s <= 0:
            raise ConfigError("token lifetimes must be positive")
        if not 0 <= self.revocation_barrier_timeout_s <= 60:
            raise ConfigError("TODO_REVOCATION_BARRIER_TIMEOUT_S must be between 0 and 60")
        self._check_keys()
        self._check_limits()
        self._check_edge()

    def _check_keys(self) -> None:
        previous = self.jwt_previous_secret
        if previous is not None and (len(previous) < 32 or previous == self.jwt_secret):
            raise ConfigError(
                "TODO_JWT_PREVIOUS_SECRET must be at least 32 characters and differ from "
                "TODO_JWT_SECRET"
            )

    def _check_limits(self) -> None:
        counts = {
            "TODO_USER_RATE_LIMIT": self.user_rate_limit,
            "TODO_THROTTLE_PER_ADDRESS": self.throttle_per_address,
            "TODO_THROTTLE_PER_ACCOUNT_ADDRESS": self.throttle_per_account_address,
            "TODO_THROTTLE_PER_ACCOUNT": self.throttle_per_account,
        }
        for name, value in counts.items():
            if value < 0:
                raise ConfigError(f"{name} must not be negative (0 turns it off)")
        if self.user_rate_burst < 1 or self.throttle_period_s < 1:
            raise ConfigError("TODO_USER_RATE_BURST and TODO_THROTTLE_PERIOD_S must be >= 1")

    def _check_hashing(self) -> None:
        if self.hash_concurrency < 0 or self.hash_queue < 0 or self.hash_max_wait_ms < 0:
            raise ConfigError(
                "TODO_HASH_CONCURRENCY, TODO_HASH_QUEUE and TODO_HASH_MAX_WAIT_MS must not be "
                "negative"
            )
        if self.hash_priority not in ("idle", "low", "normal"):
            raise ConfigError("TODO_HASH_PRIORITY must be idle, low or normal")

    def _check_edge(self) -> None:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ConfigError("set both TODO_TLS_CERT_FILE and TODO_TLS_KEY_FILE, or neither")
        if self.dev_tls and (self.environment == "production" or self.tls_cert_file is not None):
            raise ConfigError("TODO_DEV_TLS is for development without TODO_TLS_CERT_FILE")
        for name in self.cors_allow_headers:
            if not _HEADER_NAME.match(name):
                raise ConfigError(f"TODO_CORS_ALLOW_HEADERS: {name!r} is not a header name")
        for origin in self.cors_origins:
            if not _ORIGIN.match(origin):
                raise ConfigError(
                    f"TODO_CORS_ORIGINS: {origin!r} is not an origin like https://app.example.com"
                )
        for upstream in self.envoy_upstreams:
            if not _UPSTREAM.match(upstream):
                raise ConfigError(f"TODO_ENVOY_UPSTREAMS: {upstream!r} is not host:port")
        if not 1 <= self.max_request_headers_kb <= 8192:
            raise ConfigError("TODO_MAX_REQUEST_HEADERS_KB must be between 1 and 8192")
        if self.edge_hash_concurrency < 0:
            raise ConfigError("TODO_EDGE_HASH_CONCURRENCY must not be negative")
        if self.gzip_min_bytes < 0:
            raise ConfigError("TODO_GZIP_MIN_BYTES must not be negative")
        if self.event_loop not in ("asyncio", "uvloop"):
            raise ConfigError("TODO_EVENT_LOOP must be asyncio or uvloop")
        if self.log_format not in (None, "json", "console"):
            raise ConfigError("TODO_LOG_FORMAT must be json or console")
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError("TODO_METRICS_PORT must be between 0 and 65535")
        if not 0 <= self.trace_sample_percent <= 100:
            raise ConfigError("TODO_TRACE_SAMPLE_PERCENT must be between 0 and 100")
        if self.otlp_endpoint is not None and not self.otlp_endpoint.startswith(
            ("http://", "https://")
        ):
            raise ConfigError("TODO_OTLP_ENDPOINT must look like http://host:4317")

    @property
    def reflection_enabled(self) -> bool:
        """Whether to serve reflection: as set, else everywhere but in production."""
        if self.reflection is None:
            return self.environment != "production"
        return self.reflection

    @property
    def effective_log_format(self) -> Literal["json", "console"]:
        """The log format: as set, else json in production and console in development."""
        if self.log_format == "console":
            return "console"
        if self.log_format == "json" or self.environment == "production":
            return "json"
        return "console"

    @property
    def envoy_access_log_path(self) -> Path:
        """Where Envoy writes its access log (see `envoy_access_log`)."""
        if self.envoy_access_log is not None:
            return self.envoy_access_log
        if self.environment == "production":
            return Path("/dev/stdout")
        return self.data_dir / "envoy-access.log"

    @property
    def tls_enabled(self) -> bool:
        """Whether Envoy's listener serves TLS."""
        return self.tls_cert_file is not None and self.tls_key_file is not None

    @property
    def hash_slots(self) -> int:
        """Hashes one server process runs at once.

        `hash_concurrency`, or else the process's share of the cores, so that all the
        processes together can fill every idle core.
        """
        if self.hash_concurrency > 0:
            return self.hash_concurrency
        return max(1, (os.cpu_count() or 1) // self.workers)

    @property
    def dev_tls_enabled(self) -> bool:
        """Whether Envoy also serves HTTPS with the development certificate (see `dev_tls`)."""
        if self.dev_tls is None:
            return self.environment == "development" and not self.tls_enabled
        return self.dev_tls

    def worker_ports(self) -> list[int]:
        """The port of every server process, worker 0 first."""
        return [self.grpc_port + i for i in range(self.workers)]

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, require_secrets: bool = True
    ) -> Settings:
        """Build settings from environment variables (see the README's table).

        Any variable may instead name a file holding its value in `<NAME>_FILE`
        (`TODO_JWT_SECRET_FILE=/run/secrets/jwt_secret`), so secrets can come from mounted
        files rather than the environment; surrounding whitespace is stripped. Setting both
        is an error. `require_secrets`: as the init-only field of that name.
        """
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            name = "DATABASE_URL" if field.name == "database_url" else _env_name(field.name)
            raw = _read(env, name)
            if raw is None or raw == "":
                continue
            values[field.name] = _parse(name, raw, field.type)
        return cls(**values, require_secrets=require_secrets)  # type: ignore[arg-type]


def _read(env: Mapping[str, str], name: str) -> str | None:
    """The value of `name`, or the contents of the file `<name>_FILE` names."""
    value, file_name = env.get(name), env.get(f"{name}_FILE")
    if not file_name:
        return value
    if value:
        raise ConfigError(f"set {name} or {name}_FILE, not both")
    try:
        return Path(file_name).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(f"{name}_FILE: cannot read {file_name}: {error.strerror}") from None


def _env_name(field_name: str) -> str:
    return "TODO_ENV" if field_name == "environment" else "TODO_" + field_name.upper()


def _parse(name: str, raw: str, type_name: object) -> object:
    kind = str(type_name).removesuffix(" | None")
    if kind == "tuple[str, ...]":
        return tuple(item.strip() for item in raw.split(",") if item.strip())
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
