"""The real stack for benchmarks: `python -m server` on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
BENCH_RATE_LIMIT = 6_000_000
"""Per user and minute (100,000/s): on, as shipped, but far above any benchmark user's rate."""
BENCH_RATE_BURST = 100_000
AS_SHIPPED = {
    "TODO_USER_RATE_LIMIT": os.environ.get("TODO_USER_RATE_LIMIT", str(BENCH_RATE_LIMIT)),
    "TODO_USER_RATE_BURST": os.environ.get("TODO_USER_RATE_BURST", str(BENCH_RATE_BURST)),
}
"""As shipped, the per-user limit is on (Envoy then hashes each user's calls onto one
process), raised far above what a benchmark user sends: every call still pays for the
bucket and the RateLimit-* headers. TODO_USER_RATE_LIMIT=0 in the environment turns it off."""


def free_base(count: int) -> int:
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = sock.getsockname()[1]
        if base + count < 65000:
            ok = True
            for port in range(base, base + count):
                with socket.socket() as probe:
                    ok = ok and probe.connect_ex(("127.0.0.1", port)) != 0
            if ok:
                return base
    raise RuntimeError("no free ports")


class Stack:
    def __init__(
        self,
        workers: int,
        data: Path,
        log_level: str,
        extra_env: dict[str, str] | None = None,
        repo: Path = REPO,
    ) -> None:
        self.base = free_base(workers + 3)
        self.workers = workers
        self.envoy_port = self.base + workers
        self.admin_port = self.base + workers + 1
        env = {
            **os.environ,
            "PYTHONPATH": f"{repo}:{repo / 'generated'}",
            "TODO_DATA_DIR": str(data),
            "TODO_WORKERS": str(workers),
            "TODO_GRPC_PORT": str(self.base),
            "TODO_ENVOY_PORT": str(self.envoy_port),
            "TODO_ENVOY_ADMIN_PORT": str(self.base + workers + 1),
            "TODO_METRICS_PORT": str(self.base + workers + 2),
            "TODO_BCRYPT_ROUNDS": "4",
            "TODO_LOG_LEVEL": log_level,
            # One benchmark user sends thousands of calls a second: no per-user limit, which
            # also makes Envoy balance round robin (with the limit on it sends all of one
            # user's calls to one process; see the README's "Per-user request limit").
            # `make bench` passes AS_SHIPPED instead.
            "TODO_USER_RATE_LIMIT": os.environ.get("TODO_USER_RATE_LIMIT", "0"),
            "TODO_USER_RATE_BURST": os.environ.get("TODO_USER_RATE_BURST", "1000000000"),
            **(extra_env or {}),
        }
        self.data = data
        self.log_path = data / "stack.log"
        self.log = self.log_path.open("wb")
        self.env = env
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server"], cwd=repo, env=env, stdout=self.log, stderr=self.log
        )
        self.rest = f"http://127.0.0.1:{self.envoy_port}"
        deadline = time.monotonic() + 300  # generous: a busy shared box starts PostgreSQL slowly
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.rest}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.3)
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"stack did not start; {data / 'stack.log'} ends:\n{tail}")

    def workers_processes(self) -> list[psutil.Process]:
        """The server processes, worker 0 first."""
        by_port: dict[int, psutil.Process] = {}
        for child in psutil.Process(self.process.pid).children(recursive=True):
            for conn in child.net_connections(kind="tcp"):
                if (
                    conn.status == psutil.CONN_LISTEN
                    and self.base <= conn.laddr.port < self.envoy_port
                ):
                    by_port[conn.laddr.port] = child
        return [by_port[p] for p in sorted(by_port)]

    def upstream_requests(self) -> dict[int, int]:
        """Envoy's count of requests sent to each server process, by its port."""
        text = httpx.get(f"http://127.0.0.1:{self.admin_port}/clusters", timeout=5).text
        counts: dict[int, int] = {}
        for line in text.splitlines():
            parts = line.split("::")
            if len(parts) == 4 and parts[0] == "todo_grpc" and parts[2] == "rq_total":
                counts[int(parts[1].rpartition(":")[2])] = int(parts[3])
        return counts

    def processes(self) -> dict[str, list[psutil.Process]]:
        groups: dict[str, list[psutil.Process]] = {"server": [], "envoy": [], "postgres": []}
        for child in psutil.Process(self.process.pid).children(recursive=True):
            name = child.name()
            if "envoy" in name:
                groups["envoy"].append(child)
            elif "postgres" in name:
                groups["postgres"].append(child)
            else:
                groups["server"].append(child)
        if not groups["postgres"]:
            groups["postgres"] = self._postgres()
        return groups

    def _postgres(self) -> list[psutil.Process]:
        """This stack's PostgreSQL: the embedded server in its data folder and its backends
        (it daemonizes, so it is no child of the stack); with DATABASE_URL every
        `postgres` process on the machine, shared with whatever else uses that server."""
        folder = str(self.data)
        found = list(psutil.process_iter(["name", "cmdline"]))
        for proc in found:
            cmdline = proc.info["cmdline"] or []
            if (
                proc.info["name"] == "postgres"
                and "-D" in cmdline
                and cmdline[cmdline.index("-D") + 1].startswith(folder)
            ):
                try:
                    return [proc, *proc.children(recursive=True)]
                except psutil.NoSuchProcess:
                    return []
        return [p for p in found if p.info["name"] == "postgres"]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def cpu_seconds(groups: dict[str, list[psutil.Process]]) -> dict[str, float]:
    totals = {}
    for name, procs in groups.items():
        total = 0.0
        for proc in procs:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        totals[name] = total
    return totals


def cpu_snapshot(stack: Stack) -> dict[str, dict[int, float]]:
    """CPU seconds of each process of each group, listed afresh (backends come and go)."""
    snapshot: dict[str, dict[int, float]] = {}
    for name, procs in stack.processes().items():
        seen: dict[int, float] = {}
        for proc in procs:
            try:
                times = proc.cpu_times()
                seen[proc.pid] = times.user + times.system
            except psutil.NoSuchProcess:
                pass
        snapshot[name] = seen
    return snapshot


def cpu_delta(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
) -> dict[str, float]:
    """CPU seconds per group between two snapshots: a process started meanwhile counts whole,
    one that ended meanwhile is missed (PostgreSQL backends live as long as their pooled
    connection, so this undercounts rarely and never goes negative)."""
    return {
        name: sum(max(0.0, cpu - before.get(name, {}).get(pid, 0.0)) for pid, cpu in procs.items())
        for name, procs in after.items()
    }
