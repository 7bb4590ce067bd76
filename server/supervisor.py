"""The launcher behind `python -m server` and `make run`.

It starts the embedded PostgreSQL (unless DATABASE_URL is set), applies the
migrations, spawns one server process per worker (each on its own port, so
Envoy balances across them), starts Envoy in front, and prints where
everything listens.

Stopping (SIGINT, SIGTERM): every worker drains (see `app.serve`: NOT_SERVING,
watch streams end with UNAVAILABLE, in-flight calls finish), then Envoy stops
(last, so that draining calls still have their way back), then the embedded
PostgreSQL. A second signal while stopping changes nothing.

Workers: one that exits with status 0 was drained on purpose (someone sent it
SIGTERM) and is started again, logged at INFO; one that dies otherwise
(a crash, SIGKILL) is logged as an ERROR and started again, after a second if
it had run less than `CRASH_LOOP_S`. SIGHUP restarts the workers one after the
other (a rolling restart: each drains while the others serve).

It also serves the Prometheus scrape endpoint for all the workers together
(`observability/exposition.py`) and writes a ready Prometheus configuration that
scrapes it and Envoy to `data_dir/prometheus.yml`, and makes the cgroup that every
worker's password-hashing processes join, whose CPU quota it keeps at the idle cores
(`auth/hash_quota.py`; where it may make one).
"""

from __future__ import annotations

import asyncio
import dataclasses
import faulthandler
import logging
import multiprocessing
import multiprocessing.context
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server import app, devcert, edge
from server.auth import hash_quota
from server.config import Settings
from server.db import database
from server.observability import exposition, logs

log = logging.getLogger("todo.supervisor")
Process = multiprocessing.context.SpawnProcess
CRASH_LOOP_S = 5.0
"""A worker that dies sooner than this after starting is restarted after a pause."""
HEALTH_SETTLE_S = 2.0
"""After a restarted worker is SERVING, how long a rolling restart waits for Envoy's
health checks (every second) to route to it again before draining the next one."""


def _worker_main(settings: Settings, port: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launcher decides when to stop
    # A crash in native code (SIGSEGV, SIGABRT...) prints every thread's Python stack to
    # stderr, next to the supervisor's "died (signal ...)" line: the only trace it leaves.
    faulthandler.enable()
    logs.configure(settings.log_level, settings.effective_log_format)
    if settings.event_loop == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(app.serve(settings, port))
        return
    asyncio.run(app.serve(settings, port))


def run(settings: Settings) -> None:
    """Run everything until SIGINT or SIGTERM."""
    logs.configure(settings.log_level, settings.effective_log_format)
    if not settings.build_commit:
        settings = dataclasses.replace(settings, build_commit=_git_commit())
    stop = threading.Event()
    roll = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: roll.set())
    _progress("starting PostgreSQL" if settings.database_url is None else "using DATABASE_URL")
    with database.open_database(settings) as url:
        _progress("applying migrations" if settings.migrate_on_start else "checking the schema")
        database.prepare_schema(url, migrate=settings.migrate_on_start)
        settings = dataclasses.replace(settings, database_url=url)
        _Cluster(settings, stop, roll).run()


def _progress(message: str) -> None:
    print(f"==> {message}", flush=True)


class _Cluster:
    """The worker processes and Envoy, supervised until `stop` is set."""

    def __init__(self, settings: Settings, stop: threading.Event, roll: threading.Event) -> None:
        self._settings = settings
        self._stop = stop
        self._roll = roll
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, Process] = {}
        self._started_at: dict[int, float] = {}
        self._envoy: subprocess.Popen[bytes] | None = None
        self._metrics_dir: Path | None = None
        self._hash_group: hash_quota.CpuGroup | None = None
        self._hash_quota: threading.Thread | None = None
        self._hash_quota_stop = threading.Event()

    def run(self) -> None:
        try:
            self._start()
            while not self._stop.wait(0.2):
                if self._roll.is_set():
                    self._roll.clear()
                    self._rolling_restart()
                self._supervise()
        finally:
            self._shutdown()

    def _start(self) -> None:
        self._start_metrics()
        self._start_hash_quota()
        ports = self._settings.worker_ports()
        _progress(f"starting {len(ports)} server processes on ports {ports[0]}-{ports[-1]}")
        for port in ports:
            self._workers[port] = self._spawn(port)
        for port in ports:
            _wait_for_port(self._settings.grpc_host, port, self._stop)
        if self._settings.start_envoy:
            config = edge.write_envoy_config(self._settings)
            _progress(f"starting Envoy ({config})")
            self._envoy = subprocess.Popen(
                edge.envoy_command(config, base_id=self._settings.envoy_port),
                start_new_session=True,
            )
            _wait_for_health(self._settings, self._stop)
        self._banner()

    def _start_metrics(self) -> None:
        """Prepare the multiprocess folder (before any worker starts) and serve /metrics."""
        s = self._settings
        if s.metrics_port == 0:
            return
        self._metrics_dir = exposition.prepare(s)
        exposition.start(s, self._metrics_dir)
        s.data_dir.mkdir(parents=True, exist_ok=True)
        (s.data_dir / "prometheus.yml").write_text(exposition.scrape_config(s), encoding="utf-8")

    def _start_hash_quota(self) -> None:
        """Make the hashing processes' cgroup and keep its quota at the idle cores."""
        s = self._settings
        if not (s.hash_cpu_quota and s.hash_processes and s.hash_priority == "idle"):
            return
        group = hash_quota.CpuGroup.create(f"{hash_quota.PREFIX}{os.getpid()}")
        if group is None:
            return
        self._hash_group = group
        self._settings = dataclasses.replace(s, hash_cgroup=str(group.path))
        cpus = list(os.sched_getaffinity(0)) if s.hash_cpu_affinity else None
        controller = hash_quota.QuotaController(group, cpus=cpus)
        self._hash_quota = controller.start(self._hash_quota_stop)

    def _spawn(self, port: int) -> Process:
        process = self._context.Process(
            target=_worker_main, args=(self._settings, port), name=f"worker-{port}", daemon=False
        )
        process.start()
        self._started_at[port] = time.monotonic()
        return process

    def _supervise(self) -> None:
        for port, process in list(self._workers.items()):
            if process.is_alive():
                continue
            self._mark_dead(process)
            if process.exitcode == 0:
                log.info("worker on port %d drained and exited; starting a new one", port)
            else:
                log.error("worker on port %d died (%s); restarting", port, _status(process))
                if time.monotonic() - self._started_at[port] < CRASH_LOOP_S:
                    time.sleep(1)
            self._workers[port] = self._spawn(port)
        if self._envoy is not None and self._envoy.poll() is not None:
            log.error("Envoy exited with %s; stopping", self._envoy.returncode)
            self._stop.set()

    def _mark_dead(self, process: Process) -> None:
        """Fold a gone worker's metrics into the totals (its counters keep counting)."""
        if process.pid is not None and self._metrics_dir is not None:
            exposition.mark_dead(process.pid, self._metrics_dir)

    def _drain_timeout(self) -> float:
        return self._settings.drain_delay_s + self._settings.grace_period_s + 5

    def _rolling_restart(self) -> None:
        """Drain and restart the workers one at a time (SIGHUP)."""
        log.info("rolling restart of %d workers", len(self._workers))
        for port in list(self._workers):
            if self._stop.is_set():
                return
            process = self._workers[port]
            process.terminate()
            process.join(self._drain_timeout())
            if process.is_alive():
                process.kill()
                process.join()
            self._mark_dead(process)
            self._workers[port] = self._spawn(port)
            _wait_for_port(self._settings.grpc_host, port, self._stop)
            _wait_for_serving(self._settings.grpc_host, port, self._stop)
            self._stop.wait(HEALTH_SETTLE_S)
            log.info("worker on port %d restarted", port)

    def _shutdown(self) -> None:
        """Drain the workers, then stop Envoy (last: draining calls answer through it)."""
        _progress("stopping: draining the server processes")
        for process in self._workers.values():
            if process.is_alive() and process.pid is not None:
                process.terminate()
        for process in self._workers.values():
            process.join(self._drain_timeout())
            if process.is_alive():
                log.error("worker %s did not drain in time; killing it", process.name)
                process.kill()
                process.join()
        if self._envoy is not None and self._envoy.poll() is None:
            _progress("stopping Envoy")
            self._envoy.terminate()
            try:
                self._envoy.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._envoy.kill()
                self._envoy.wait()
        if self._hash_group is not None:
            self._hash_quota_stop.set()
            if self._hash_quota is not None:
                self._hash_quota.join(5)  # it lifts the cap on its way out
            self._hash_group.remove()
        _progress("stopped")

    def _banner(self) -> None:
        s = self._settings
        workers = ", ".join(f"{s.grpc_host}:{p}" for p in s.worker_ports())
        lines = [f"gRPC direct (per process): {workers}"]
        if s.start_envoy:
            scheme, grpc_kind = ("https", "TLS") if s.tls_enabled else ("http", "h2c")
            lines[:0] = [
                f"REST:  {scheme}://{s.envoy_host}:{s.envoy_port}/api/v1/...",
                f"docs:  {scheme}://{s.envoy_host}:{s.envoy_port}/docs"
                f" (OpenAPI: {scheme}://{s.envoy_host}:{s.envoy_port}/openapi.json)",
                f"gRPC:  {s.envoy_host}:{s.envoy_port} ({grpc_kind}, through Envoy)",
                f"health: {scheme}://{s.envoy_host}:{s.envoy_port}/healthz",
                *_browser_lines(s),
                f"Envoy admin: http://127.0.0.1:{s.envoy_admin_port}"
                f" (Prometheus: /stats/prometheus)",
                f"Envoy access log: {s.envoy_access_log_path}",
            ]
        if s.metrics_port:
            lines += [
                f"metrics: {exposition.metrics_url(s)}",
                f"Prometheus config: {(s.data_dir / 'prometheus.yml').resolve()}",
            ]
        if s.otlp_endpoint:
            lines.append(f"traces: OTLP to {s.otlp_endpoint}")
        print(
            "\n".join(
                [
                    "",
                    "todo service is up:",
                    *("  " + ln for ln in lines),
                    "  Ctrl-C stops everything.",
                    "",
                ]
            ),
            flush=True,
        )


def _git_commit() -> str:
    """The checkout's commit for `todo_build_info` (unknown outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _browser_lines(settings: Settings) -> list[str]:
    """Where a browser gets HTTP/2: the same port over HTTPS, with the development cert."""
    if not settings.dev_tls_enabled:
        return []
    cert = devcert.DevCertificate.in_folder(settings.data_dir).cert_file
    return [
        f"browsers (HTTP/2): https://localhost:{settings.envoy_port}/api/v1/... "
        f"(development certificate {cert}; README: Using it from a web frontend)"
    ]


def _wait_for_port(host: str, port: int, stop: threading.Event, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stop.is_set():
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.1)
    if not stop.is_set():
        raise RuntimeError(f"server process on port {port} did not start in {timeout_s:.0f}s")


def _status(process: Process) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit status {code}"


def _wait_for_serving(host: str, port: int, stop: threading.Event, timeout_s: float = 60) -> None:
    """Wait until the worker on `port` answers gRPC health SERVING."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline and not stop.is_set():
            try:
                answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)


def _wait_for_health(settings: Settings, stop: threading.Event, timeout_s: float = 60) -> None:
    scheme = "https" if settings.tls_enabled else "http"
    url = f"{scheme}://{settings.envoy_host}:{settings.envoy_port}/healthz"
    # A local liveness probe of our own Envoy: the certificate may be for another name.
    context = None
    if settings.tls_enabled:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=1, context=context) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    if not stop.is_set():
        raise RuntimeError(f"Envoy did not report healthy at {url} in {timeout_s:.0f}s")
