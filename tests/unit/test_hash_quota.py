"""The hashing processes' cgroup: finding the cpu hierarchy, the quota files, the controller."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from server.auth import hash_quota
from server.auth.hash_pool import HashPool
from server.auth.hash_quota import CpuGroup, QuotaController

V1_MOUNTS = """\
25 30 0:22 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs ro,mode=755
31 25 0:27 / /sys/fs/cgroup/cpu rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu
32 25 0:28 / /sys/fs/cgroup/cpuacct rw,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpuacct
"""
V2_MOUNTS = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
V1_ROOT, V2_ROOT = "/sys/fs/cgroup/cpu", "/sys/fs/cgroup"


def _proc(tmp_path: Path, mountinfo: str, cgroup: str) -> Path:
    (tmp_path / "mountinfo").write_text(mountinfo)
    (tmp_path / "cgroup").write_text(cgroup)
    return tmp_path


@pytest.mark.parametrize(
    ("mountinfo", "cgroup", "expected"),
    [
        (
            V1_MOUNTS,
            "2:cpuacct:/\n1:cpu:/system.slice/todo.service\n0::/\n",
            ("/sys/fs/cgroup/cpu/system.slice/todo.service", False),
        ),
        (
            V1_MOUNTS.replace("rw,cpu\n", "rw,cpu,cpuacct\n"),
            "1:cpu,cpuacct:/\n",
            ("/sys/fs/cgroup/cpu", False),
        ),
        (V2_MOUNTS, "0::/user.slice/todo\n", ("/sys/fs/cgroup/user.slice/todo", True)),
        (V1_MOUNTS.replace("rw,cpu\n", "rw,memory\n"), "1:memory:/\n", None),
    ],
    ids=["v1", "v1-cpu-and-cpuacct", "v2", "no-cpu-controller"],
)
def test_the_cpu_cgroup_is_the_processes_own_in_the_cpu_hierarchy(
    tmp_path: Path, mountinfo: str, cgroup: str, expected: tuple[str, bool] | None
) -> None:
    found = hash_quota.cpu_cgroup(_proc(tmp_path, mountinfo, cgroup))
    assert found == (None if expected is None else (Path(expected[0]), expected[1]))


def test_no_group_where_none_can_be_made(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-mount"
    proc = _proc(tmp_path, V1_MOUNTS.replace("/sys/fs/cgroup/cpu ", f"{missing} "), "1:cpu:/\n")
    assert CpuGroup.create("todo-hashers-test", proc) is None
    assert not missing.exists()


def test_a_group_without_cpu_control_is_not_left_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cgroup v2 makes the folder but, without the cpu controller delegated, no cpu.* files."""
    mount = tmp_path / "fs"
    mount.mkdir()

    def no_cpu_files(self: CpuGroup) -> None:
        raise FileNotFoundError(self.path / "cpu.weight")

    monkeypatch.setattr(CpuGroup, "set_lowest_weight", no_cpu_files)
    proc = _proc(tmp_path, V2_MOUNTS.replace("/sys/fs/cgroup ", f"{mount} "), "0::/\n")
    assert CpuGroup.create("todo-hashers-1", proc) is None
    assert list(mount.iterdir()) == []


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
def test_a_new_group_weighs_least_then_is_made_idle_with_no_cap(tmp_path: Path, v2: bool) -> None:
    mount = tmp_path / "fs"
    mount.mkdir()
    mounts = V2_MOUNTS if v2 else V1_MOUNTS
    proc = _proc(
        tmp_path, mounts.replace(f"{V2_ROOT if v2 else V1_ROOT} ", f"{mount} "), "1:cpu:/\n0::/\n"
    )
    group = CpuGroup.create("todo-hashers-1", proc)
    assert group is not None
    assert group.path == mount / "todo-hashers-1"
    assert (group.path / ("cpu.weight" if v2 else "cpu.shares")).read_text() == ("1" if v2 else "2")
    assert (group.path / "cpu.idle").read_text() == "1"
    assert (group.path / ("cpu.max" if v2 else "cpu.cfs_quota_us")).read_text() == (
        "max 100000" if v2 else "-1"
    )


def test_a_kernel_without_idle_groups_still_gets_a_group(tmp_path: Path) -> None:
    mount = tmp_path / "fs"
    (mount / "todo-hashers-1" / "cpu.idle").mkdir(parents=True)  # unwritable as a file
    proc = _proc(tmp_path, V1_MOUNTS.replace(f"{V1_ROOT} ", f"{mount} "), "1:cpu:/\n")
    group = CpuGroup.create("todo-hashers-1", proc)
    assert group is not None
    assert (group.path / "cpu.shares").read_text() == "2"


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
def test_the_quota_is_written_as_each_cgroup_version_wants(tmp_path: Path, v2: bool) -> None:
    group = CpuGroup(tmp_path, v2)
    files = ("cpu.max",) if v2 else ("cpu.cfs_period_us", "cpu.cfs_quota_us")

    def written() -> list[str]:
        return [(tmp_path / name).read_text() for name in files]

    group.set_quota(0.25)
    assert written() == (["25000 100000"] if v2 else ["100000", "25000"])
    group.set_quota(1.5)  # more than one core: more than one period per period
    assert written() == (["150000 100000"] if v2 else ["100000", "150000"])
    group.set_quota(0.0001)  # the kernel's least
    assert written() == (["1000 100000"] if v2 else ["100000", "1000"])
    group.set_quota(None)
    assert written() == (["max 100000"] if v2 else ["100000", "-1"])


class FakeGroup(CpuGroup):
    """Records the quotas, idle flags and CPU sets it is given."""

    def __init__(self) -> None:
        super().__init__(Path("/nonexistent"), v2=True)
        self.quotas: list[float | None] = []
        self.idle: list[bool] = []
        self.pins: list[set[int]] = []

    def pin(self, cpus: set[int]) -> int:
        self.pins.append(cpus)
        return 1

    def set_quota(self, cores: float | None) -> None:
        self.quotas.append(cores)

    def set_idle(self, idle: bool = True) -> bool:
        self.idle.append(idle)
        return True


class FakeMachine:
    """A clock and an idle-seconds counter: `idle_cores` idle while time passes in `wait`."""

    def __init__(self, idle_cores: float) -> None:
        self.now = 100.0
        self.idle = 5000.0
        self.idle_cores = idle_cores
        self.waits: list[float] = []

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        self.idle += seconds * self.idle_cores
        return False


def test_a_probe_pauses_hashing_then_gives_it_the_idle_cores_it_measured() -> None:
    group, machine = FakeGroup(), FakeMachine(idle_cores=0.3)
    controller = QuotaController(
        group, interval_s=4.58, probe_s=0.4, idle=lambda: machine.idle, clock=lambda: machine.now
    )
    # paused 0.42 s of every 5 s: the 0.3 idle cores are given over the other 4.58
    assert controller.probe(machine.wait) == pytest.approx(0.3 * 5 / 4.58)
    assert group.quotas == [hash_quota.PAUSE_CORES, pytest.approx(0.3 * 5 / 4.58)]
    assert machine.waits == [hash_quota.SETTLE_S, 0.4]


def test_the_quota_rises_only_after_two_idle_probes_and_falls_at_once() -> None:
    """A load that pauses for one probe does not hand the hashers the CPU as it resumes."""
    group, machine = FakeGroup(), FakeMachine(idle_cores=0.2)
    controller = QuotaController(
        group, interval_s=4.58, probe_s=0.4, idle=lambda: machine.idle, clock=lambda: machine.now
    )
    granted = []
    for idle_cores in (0.2, 1.8, 0.2, 1.8, 1.8, 0.3):
        machine.idle_cores = idle_cores
        granted.append(controller.probe(machine.wait) * 4.58 / 5)
    assert granted == pytest.approx([0.2, 0.2, 0.2, 0.2, 1.8, 0.3])


def test_a_busy_machine_leaves_hashing_its_least_quota_not_nothing() -> None:
    group, machine = FakeGroup(), FakeMachine(idle_cores=0.0)
    controller = QuotaController(group, idle=lambda: machine.idle, clock=lambda: machine.now)
    assert controller.probe(machine.wait) == hash_quota.MIN_CORES


def test_the_group_stops_being_idle_while_the_machine_is_saturated() -> None:
    """An idle group gets no CPU at all on a saturated machine: it falls back to its weight."""
    group, machine = FakeGroup(), FakeMachine(idle_cores=0.3)
    controller = QuotaController(group, idle=lambda: machine.idle, clock=lambda: machine.now)
    controller.probe(machine.wait)
    assert group.idle == []  # made idle at creation; nothing to change
    for idle_cores in (0.0, 0.01, 2 * hash_quota.SATURATED_CORES, 0.3):
        machine.idle_cores = idle_cores
        controller.probe(machine.wait)
    assert group.idle == [False, True]  # once saturated, once not any more


@pytest.mark.parametrize(
    ("quota", "cpus", "expected"),
    [
        (0.1, [0, 1], {1}),  # the least quota: one CPU, the last
        (0.22, [0, 1], {1}),
        (1.0, [0, 1], {1}),
        (1.08, [0, 1], {0, 1}),
        (2.5, [0, 1], {0, 1}),  # never more than there are
        (2.5, [2, 3, 5, 7], {3, 5, 7}),  # the launcher's own CPUs, from the end
        (0.3, [4], {4}),
    ],
)
def test_hashers_get_as_few_cpus_as_their_quota_needs(
    quota: float, cpus: list[int], expected: set[int]
) -> None:
    assert hash_quota.hashing_cpus(quota, cpus) == expected


def test_each_probe_keeps_the_hashers_on_the_cpus_their_quota_needs() -> None:
    group, machine = FakeGroup(), FakeMachine(idle_cores=0.2)
    controller = QuotaController(
        group, idle=lambda: machine.idle, clock=lambda: machine.now, cpus=[1, 0]
    )
    controller.probe(machine.wait)
    machine.idle_cores = 1.5  # the load went: hashing may have every CPU (from the 2nd probe)
    controller.probe(machine.wait)
    controller.probe(machine.wait)
    assert group.pins == [{1}, {1}, {0, 1}]
    unpinned = FakeGroup()
    QuotaController(unpinned, idle=lambda: machine.idle, clock=lambda: machine.now).probe(
        machine.wait
    )
    assert unpinned.pins == []  # no `cpus`: hashing stays where the kernel puts it


class StopAfter(threading.Event):
    """A stop event that sets itself at its `waits`-th wait; time passes on `machine`."""

    def __init__(self, machine: FakeMachine, waits: int) -> None:
        super().__init__()
        self._machine = machine
        self._left = waits

    def wait(self, timeout: float | None = None) -> bool:
        self._left -= 1
        if self._left == 0:
            self.set()
        self._machine.wait(timeout or 0.0)
        return self.is_set()


def test_the_controller_probes_until_stopped_then_lifts_the_cap() -> None:
    group, machine = FakeGroup(), FakeMachine(idle_cores=1.2)
    controller = QuotaController(
        group, interval_s=4.58, probe_s=0.4, idle=lambda: machine.idle, clock=lambda: machine.now
    )
    controller.run(StopAfter(machine, waits=9))  # three rounds: settle, measure, interval
    given = pytest.approx(1.2 * 5 / 4.58)
    assert group.quotas == [hash_quota.PAUSE_CORES, given] * 3 + [None]


def _own_cpus() -> set[int]:
    return os.sched_getaffinity(0)


def _own_cpu_cgroup() -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(",") or controllers == "":
            return path
    return ""


@pytest.mark.skipif(os.geteuid() != 0, reason="making a cgroup needs root")
async def test_hashing_processes_join_the_group_and_it_takes_a_quota() -> None:
    group = CpuGroup.create(f"{hash_quota.PREFIX}test-{os.getpid()}")
    if group is None:
        pytest.skip("no writable cpu cgroup here")
    pool = HashPool(
        slots=1, queue=0, max_wait_s=1.0, priority="idle", processes=True, cgroup=str(group.path)
    )
    try:
        theirs = await pool.run(_own_cpu_cgroup)
        assert theirs.endswith(group.path.name), theirs
        assert _own_cpu_cgroup() != theirs  # the server process stays where it was
        group.set_quota(0.5)
        limit = (
            (group.path / "cpu.max").read_text().split()[0]
            if group.v2
            else (group.path / "cpu.cfs_quota_us").read_text().strip()
        )
        assert limit == "50000"
        last = max(os.sched_getaffinity(0))
        assert group.pin({last}) >= 1  # the hashing process, every thread of it
        assert await pool.run(_own_cpus) == {last}
        assert os.sched_getaffinity(0) != {last} or os.cpu_count() == 1  # not the server's
    finally:
        pool.close()
        group.remove()
    assert not group.path.exists()
