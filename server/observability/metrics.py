"""Every Prometheus family of the service, declared once, with bounded labels.

Labels are only ever rpc method names (a fixed set: the registered methods), status code
names, and small fixed vocabularies (`kind`, `reason`, `event`, `op`, `statement`: a
repository method name). Never a user id, a task id, an address or a raw path.

The server runs N worker processes, so the values are kept in prometheus-client's
multiprocess mode: each process writes its samples to memory-mapped files in
`PROMETHEUS_MULTIPROC_DIR` (set by the launcher before the workers start, under the data
folder, wiped at each start), and the launcher's scrape endpoint sums them
(`exposition.py`). Files of a dead worker stay, so counters and histograms keep their
totals across a restart and never go backwards; live gauges (`livesum`, `livemax`) are
dropped for a dead worker by `mark_process_dead`. Without the variable (unit and
integration tests, one process) the same objects count in memory.

The hot path uses children cached per label set (`rpc_children`) instead of building a
label tuple per call, and writes as few samples as it can (each multiprocess write checks
the pid and packs into the mmap): the in-flight count is a plain integer per process and
the pool's figures come from psycopg_pool's own statistics, both copied into the metrics by
the sampler every couple of seconds (`app._sample_forever`).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

from server import domain

NAMESPACE = "todo"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""1 ms to 10 s, roughly 2.5x apart (RPCs, statements, pool acquire, bcrypt)."""
FAST_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)
"""100 µs to 1 s: single statements and pool acquisition are usually sub-millisecond."""

RPC_REQUESTS = Counter(
    "rpc_requests", "Finished RPCs by method and status code.", ["rpc", "code"], namespace=NAMESPACE
)
RPC_DURATION = Histogram(
    "rpc_duration_seconds",
    "RPC latency in the server, from the first interceptor to the last message.",
    ["rpc"],
    namespace=NAMESPACE,
    buckets=LATENCY_BUCKETS,
)
RPC_IN_FLIGHT = Gauge(
    "rpc_in_flight", "RPCs being served now.", namespace=NAMESPACE, multiprocess_mode="livesum"
)
STREAMS_OPEN = Gauge(
    "streams_open",
    "Open server streams by kind (stream: StreamTasks*, watch: WatchTasks).",
    ["kind"],
    namespace=NAMESPACE,
    multiprocess_mode="livesum",
)
WATCH_EVENTS_SENT = Counter(
    "watch_events_sent", "Change events sent on watch streams.", namespace=NAMESPACE
)
WATCH_EVENTS_DROPPED = Counter(
    "watch_events_dropped",
    "Change events read but not delivered because the stream ended first (the client "
    "gets them again when it resumes with its last token).",
    namespace=NAMESPACE,
)
WATCH_LAG = Histogram(
    "watch_lag_seconds",
    "Notification lag: from a change's commit to its event being handed to the stream.",
    namespace=NAMESPACE,
    buckets=LATENCY_BUCKETS,
)
POOL_SIZE = Gauge(
    "db_pool_size", "Open pooled connections.", namespace=NAMESPACE, multiprocess_mode="livesum"
)
POOL_IN_USE = Gauge(
    "db_pool_in_use",
    "Pooled connections lent out.",
    namespace=NAMESPACE,
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    "db_pool_waiting",
    "Callers waiting for a pooled connection.",
    namespace=NAMESPACE,
    multiprocess_mode="livesum",
)
POOL_MAX = Gauge(
    "db_pool_max",
    "Most pooled connections the processes may open.",
    namespace=NAMESPACE,
    multiprocess_mode="livesum",
)
POOL_ACQUISITIONS = Counter(
    "db_pool_acquisitions", "Connections handed out by the pools.", namespace=NAMESPACE
)
POOL_ACQUIRE_WAIT = Counter(
    "db_pool_acquire_wait_seconds",
    "Time callers spent waiting for a pooled connection (divide by acquisitions: the mean).",
    namespace=NAMESPACE,
)
POOL_ACQUIRE_ERRORS = Counter(
    "db_pool_acquire_errors",
    "Requests for a pooled connection that failed (timeouts included).",
    namespace=NAMESPACE,
)
DB_STATEMENT = Histogram(
    "db_statement_duration_seconds",
    "Statement latency (execute and fetch) by repository method.",
    ["statement"],
    namespace=NAMESPACE,
    buckets=FAST_BUCKETS,
)
REVOCATIONS = Gauge(
    "revocation_cache_size",
    "Recently revoked sessions held in memory (largest over the processes).",
    namespace=NAMESPACE,
    multiprocess_mode="livemax",
)
REVOCATION_RELOADS = Counter(
    "revocation_reloads",
    "Full reloads of the revocation cache (one per listener (re)connect).",
    namespace=NAMESPACE,
)
REFUSALS = Counter(
    "rate_limit_refusals",
    "Calls refused by a limit, by reason (user_rate: per-user request limit; "
    "throttle_address, throttle_account_address, throttle_account: credential throttles; "
    "password_checks_busy: the password hashing pool was full).",
    ["reason"],
    namespace=NAMESPACE,
)
BCRYPT = Histogram(
    "bcrypt_duration_seconds",
    "bcrypt time by operation (hash, verify), including the wait for a hashing slot.",
    ["op"],
    namespace=NAMESPACE,
    buckets=LATENCY_BUCKETS,
)
SECURITY_EVENTS = Counter(
    "security_events",
    "Security events by kind and reason (see the README's Observability section).",
    ["event", "reason"],
    namespace=NAMESPACE,
)
PROCESS_RSS = Gauge(
    "process_resident_memory_bytes",
    "Resident memory of the server processes, summed.",
    namespace=NAMESPACE,
    multiprocess_mode="livesum",
)
PROCESS_FDS = Gauge(
    "process_open_fds",
    "Open file descriptors of the server processes, summed.",
    namespace=NAMESPACE,
    multiprocess_mode="livesum",
)
PROCESS_CPU = Counter(
    "process_cpu_seconds",
    "User and system CPU time of the server processes (dead ones included).",
    namespace=NAMESPACE,
)
PROCESSES = Gauge(
    "processes", "Live server processes.", namespace=NAMESPACE, multiprocess_mode="livesum"
)
BUILD_INFO = Gauge(
    "build_info",
    "Always 1; the labels name the running build.",
    ["version", "commit"],
    namespace=NAMESPACE,
    multiprocess_mode="max",
)

REFUSAL_USER_RATE = REFUSALS.labels("user_rate")


class LocalCount:
    """A per-process integer the hot path bumps for free; the sampler publishes it."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


in_flight = LocalCount()
"""RPCs being served by this process (published as `todo_rpc_in_flight`)."""


class RpcChildren:
    """The counter and histogram children of one rpc, made once and reused per call."""

    __slots__ = ("_codes", "_rpc", "duration")

    def __init__(self, rpc: str) -> None:
        self._rpc = rpc
        self.duration = RPC_DURATION.labels(rpc)
        self._codes: dict[str, Counter] = {}

    def requests(self, code: str) -> Counter:
        """The request counter child for `code`."""
        child = self._codes.get(code)
        if child is None:
            child = self._codes[code] = RPC_REQUESTS.labels(self._rpc, code)
        return child


_rpc_children: dict[str, RpcChildren] = {}


def rpc_children(rpc: str) -> RpcChildren:
    """The cached metric children of `rpc` (a registered method name)."""
    children = _rpc_children.get(rpc)
    if children is None:
        children = _rpc_children[rpc] = RpcChildren(rpc)
    return children


_statements: dict[str, Histogram] = {}


def statement_histogram(name: str) -> Histogram:
    """The latency histogram child of one repository method."""
    child = _statements.get(name)
    if child is None:
        child = _statements[name] = DB_STATEMENT.labels(name)
    return child


def watch_event_sent(change: domain.TaskChange | None) -> None:
    """Count a change event handed to a watch stream and observe its lag (not heartbeats)."""
    if change is not None:
        WATCH_EVENTS_SENT.inc()
        lag = dt.datetime.now(dt.UTC) - change.committed_at
        WATCH_LAG.observe(max(0.0, lag.total_seconds()))


def watch_event_dropped(change: domain.TaskChange | None) -> None:
    """Count a change event the stream ended before delivering."""
    if change is not None:
        WATCH_EVENTS_DROPPED.inc()


class ProcessSampler:
    """Copies this process's resource use into the process gauges (call `sample()`)."""

    def __init__(self, clock: Callable[[], os.times_result] = os.times) -> None:
        self._clock = clock
        self._cpu = 0.0
        self._page = os.sysconf("SC_PAGE_SIZE")

    def sample(self) -> None:
        """Read RSS, open descriptors and CPU time from /proc and the OS."""
        times = self._clock()
        cpu = times.user + times.system
        PROCESS_CPU.inc(max(0.0, cpu - self._cpu))
        self._cpu = cpu
        try:
            with open("/proc/self/statm", encoding="ascii") as statm:
                PROCESS_RSS.set(int(statm.read().split()[1]) * self._page)
            PROCESS_FDS.set(len(os.listdir("/proc/self/fd")))
        except OSError:  # not Linux: RSS and descriptors stay unknown
            pass
