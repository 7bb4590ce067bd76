"""A CPU quota for the password-hashing processes, kept at the CPU the rest leaves idle.

Hashing at idle priority still costs the request path: the hashers also fill the moments
a request waits (for PostgreSQL, for Envoy), and each wake-up then takes the CPU back
from a hasher with cold caches; bcrypt alone at idle priority cost a get load 3-19% of
its rate on the 2-core test box (README, "Login floods"). So the launcher puts every
hashing process of its workers into one idle cpu cgroup (`CpuGroup`: any woken request
preempts a hasher at once) and `QuotaController` holds that group's CPU quota at the cores
the machine leaves idle *without* hashing. On a saturated machine, where an idle group
would get no CPU at all, the group falls back to the lowest weight, so logins still end.
And it keeps the hashers on as few CPUs as that quota needs (the highest-numbered ones),
so the others never run a hasher: a CPU that runs one is not idle, so it does not pull
waiting request work off a busy CPU at once as an idle one does (on the 2-core box, hashers
kept on one CPU brought a 16-connection flood's get p99 from 1.50x to 1.12x).
While hashers run, that share cannot be seen (they take it), so every `interval_s` the
controller pauses hashing for `probe_s` (quota at `PAUSE_CORES`) and reads the machine's
idle CPU meanwhile (`/proc/stat`). Hashes therefore get what the goal of issue 15 gives
them, the idle cores, and no more.

A cgroup needs root or a delegated one (systemd `Delegate=yes`); cgroup v2 also refuses
a child with the cpu controller under a cgroup that holds processes. Where none can be
made the hashers stay at idle priority only, as before.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "todo-hashers-"
"""A launcher's group is `PREFIX` + its pid."""
SETTLE_S = 0.02
"""How long a probe waits, after pausing hashing, before it starts to measure."""
PERIOD_US = 100_000
"""The bandwidth period: the quota is `cores * PERIOD_US` of CPU time per period."""
PAUSE_CORES = 0.01
"""The quota while probing: hashing all but stops (the kernel's least is 1 ms a period)."""
MIN_CORES = 0.1
"""The least quota otherwise. A cap, not a reservation: the hashers still only get CPU
that others leave (lowest weight, SCHED_IDLE), but on a busy machine whose probes find no
idle CPU a login still ends in seconds, not minutes."""
SATURATED_CORES = 0.05
"""Below this many idle cores a probe finds the machine saturated, and the group stops
being an idle group (it keeps the lowest weight): an idle group gets no CPU at all while
other work keeps every core busy (a login took over 30 s against 6 busy loops on 2 cores,
and 3-5 s at the lowest weight)."""


class CpuGroup:
    """One cpu cgroup (v1 `cpu` hierarchy or v2) whose CPU bandwidth can be capped."""

    def __init__(self, path: Path, v2: bool) -> None:
        self.path = path
        self.v2 = v2

    @classmethod
    def create(cls, name: str, proc: Path = Path("/proc/self")) -> CpuGroup | None:
        """Make `name` under this process's own cpu cgroup; None where it cannot be."""
        try:
            found = cpu_cgroup(proc)
            if found is None:
                log.info("password hashing: no cpu cgroup controller here, no quota")
                return None
            base, v2 = found
            _remove_stale(base)
            group = cls(base / name, v2)
            group.path.mkdir(exist_ok=True)
        except OSError as error:
            log.info("password hashing: no cpu cgroup (%s), no quota", error)
            return None
        try:
            group.set_lowest_weight()
            group.set_quota(None)
        except OSError as error:  # cgroup v2 without the cpu controller delegated down here
            log.info("password hashing: no cpu control in %s (%s), no quota", group.path, error)
            with contextlib.suppress(OSError):
                group.path.rmdir()
            return None
        if not group.set_idle():
            log.info("password hashing: no cpu.idle here (Linux < 5.15), lowest weight only")
        return group

    def set_lowest_weight(self) -> None:
        """Weigh the group as little as the kernel allows against its siblings.

        As the nice-19 autogroup the hashers otherwise get, which a cgroup's members lose.
        """
        if self.v2:
            (self.path / "cpu.weight").write_text("1")
        else:
            (self.path / "cpu.shares").write_text("2")

    def set_idle(self, idle: bool = True) -> bool:
        """Make it an idle group or not (`cpu.idle`, Linux 5.15+); False where there is none.

        A woken thread of any other group preempts an idle group's hasher at once, and a
        CPU that runs only hashers counts as idle when the kernel places a woken thread.
        With the lowest weight alone, a running hasher keeps the CPU until its time slice
        ends (EEVDF, Linux 6.6+), and the request that woke waits for it. Made idle after
        the weight is set: the kernel refuses a weight for an idle group.
        """
        try:
            (self.path / "cpu.idle").write_text("1" if idle else "0")
        except OSError:
            return False
        return True

    def pin(self, cpus: set[int]) -> int:
        """Keep every thread in the group on `cpus`; returns how many threads were moved.

        A thread that ends meanwhile is skipped. A hashing process that joins later runs
        anywhere until the next call.
        """
        listing = self.path / ("cgroup.threads" if self.v2 else "tasks")
        moved = 0
        for tid in listing.read_text().split():
            try:
                os.sched_setaffinity(int(tid), cpus)
            except OSError:  # ended, or not ours to move
                continue
            moved += 1
        return moved

    def set_quota(self, cores: float | None) -> None:
        """Cap the group at `cores` of CPU (None: no cap)."""
        quota = -1 if cores is None else max(1000, round(cores * PERIOD_US))
        if self.v2:
            value = "max" if quota < 0 else str(quota)
            (self.path / "cpu.max").write_text(f"{value} {PERIOD_US}")
        else:
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))

    def remove(self) -> None:
        """Delete the group once its processes are gone (best effort: they may linger)."""
        for _ in range(20):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)
        log.info("could not remove %s; it is empty and harmless", self.path)


def _remove_stale(base: Path) -> None:
    """Delete the groups of launchers that died without removing theirs (SIGKILL)."""
    for stale in base.glob(f"{PREFIX}*"):
        pid = stale.name.removeprefix(PREFIX)
        if pid.isdigit() and not Path("/proc", pid).exists():
            with contextlib.suppress(OSError):  # not empty yet, or not ours to remove
                stale.rmdir()


def cpu_cgroup(proc: Path = Path("/proc/self")) -> tuple[Path, bool] | None:
    """The folder of the process's own cgroup with the cpu controller, and whether it is v2."""
    v1: Path | None = None
    v2: Path | None = None
    for line in (proc / "mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        if tail[0] == "cgroup" and "cpu" in tail[2].split(","):
            v1 = Path(fields[4])
        elif tail[0] == "cgroup2":
            v2 = Path(fields[4])
    for line in (proc / "cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if v1 is not None and "cpu" in controllers.split(","):
            return v1 / path.lstrip("/"), False
        if v1 is None and v2 is not None and controllers == "":
            return v2 / path.lstrip("/"), True
    return None


def join(group: str) -> bool:
    """Move the calling process into the cgroup at `group` (a hashing child, at its start)."""
    try:
        Path(group, "cgroup.procs").write_text(str(os.getpid()))
    except OSError as error:
        log.warning("hashing process %d could not join %s: %s", os.getpid(), group, error)
        return False
    return True


def idle_seconds(stat: Path = Path("/proc/stat")) -> float:
    """CPU seconds the machine has spent idle (all cores, iowait included) since boot."""
    fields = stat.read_text().split("\n", 1)[0].split()
    return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")


def hashing_cpus(quota: float, cpus: Sequence[int]) -> set[int]:
    """The CPUs hashers may use under a quota of `quota` cores.

    As many as the quota needs, at least one, taken from the end of `cpus` (the launcher's
    own, in order).
    """
    count = min(len(cpus), max(1, math.ceil(quota - 1e-9)))
    return set(cpus[len(cpus) - count :])


class QuotaController:
    """Keeps a group's quota at the idle cores measured while its hashing is paused.

    And keeps the group idle unless the machine is saturated (`SATURATED_CORES`), and, with
    `cpus`, its threads on as few of those CPUs as the quota needs (`hashing_cpus`).
    """

    def __init__(
        self,
        group: CpuGroup,
        interval_s: float = 5.0,
        probe_s: float = 0.4,
        idle: Callable[[], float] = idle_seconds,
        clock: Callable[[], float] = time.monotonic,
        cpus: Sequence[int] | None = None,
    ) -> None:
        self._group = group
        self._interval_s = interval_s
        self._probe_s = probe_s
        self._idle = idle
        self._clock = clock
        self._idle_group = True  # as `CpuGroup.create` leaves it
        self._cpus = sorted(cpus) if cpus is not None else None
        self._pinned: set[int] | None = None
        self._last_idle: float | None = None

    def probe(self, wait: Callable[[float], object]) -> float:
        """Pause hashing for `probe_s`, measure the idle cores, and give them to the group.

        It gets the fewer of this probe's and the last one's.

        Returns:
            The quota set, in cores.
        """
        self._group.set_quota(PAUSE_CORES)
        wait(SETTLE_S)  # let a running hasher use up its period and stop
        idle_before, started = self._idle(), self._clock()
        wait(self._probe_s)
        idle_cores = (self._idle() - idle_before) / max(self._clock() - started, 1e-3)
        # Hashing is paused for part of each round: make up for it in the rest.
        paused = (SETTLE_S + self._probe_s) / (SETTLE_S + self._probe_s + self._interval_s)
        # A quota rises only when two probes in a row found the CPU idle: a load that pauses
        # for one probe (a second between bursts) would otherwise hand the hashers every core
        # until the next one, just as it resumes. It falls at once.
        granted = idle_cores if self._last_idle is None else min(idle_cores, self._last_idle)
        self._last_idle = idle_cores
        quota = max(MIN_CORES, granted / (1 - paused))
        self._group.set_quota(quota)
        if self._cpus is not None:
            pinned = hashing_cpus(quota, self._cpus)
            self._group.pin(pinned)  # every round: hashing processes started since
            if pinned != self._pinned:
                self._pinned = pinned
                log.info("password hashing: on CPUs %s", ",".join(map(str, sorted(pinned))))
        idle_group = idle_cores >= SATURATED_CORES
        if idle_group != self._idle_group:
            self._idle_group = idle_group
            if self._group.set_idle(idle_group):  # False: no idle groups on this kernel
                log.info(
                    "password hashing: %s",
                    "idle group" if idle_group else "saturated machine, lowest weight",
                )
        return quota

    def run(self, stop: threading.Event) -> None:
        """Probe every `interval_s` until `stop` is set; then lift the cap."""
        try:
            while not stop.is_set():
                try:
                    self.probe(stop.wait)
                except OSError as error:  # the group went away: leave hashing uncapped
                    log.warning("hashing quota stopped: %s", error)
                    return
                stop.wait(self._interval_s)
        finally:
            with contextlib.suppress(OSError):
                self._group.set_quota(None)

    def start(self, stop: threading.Event) -> threading.Thread:
        """Run in a daemon thread."""
        thread = threading.Thread(target=self.run, args=(stop,), name="hash-quota", daemon=True)
        thread.start()
        return thread
