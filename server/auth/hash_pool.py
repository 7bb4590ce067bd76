"""Bounded, low-priority execution of password hashes.

A bcrypt hash costs about 250 ms of CPU at cost 12. Run without bounds (one
thread per call), a flood of logins takes every core and every other user's
calls queue behind it. `HashPool` bounds one server process's hashes:

- at most `slots` hashes run at once, each on one of `slots` threads that the
  kernel schedules below the request path (`priority`, set per thread: Linux
  schedules threads one by one), so idle CPU goes to hashing and busy CPU to
  everyone else;
- at most `queue` more wait for a slot, each for at most `max_wait_s`;
- anything past that is shed at once: `Shed` is raised, with no work done.

bcrypt releases the GIL while it hashes, so threads run it in parallel. With
`processes=True` the hashes run in child processes instead (spawned on first
use), so a low-priority hasher never holds the request path's GIL, and each
child leaves the server's scheduling group (`lower_process_priority`): for the
launcher's hashing cgroup, whose CPU quota follows the idle cores, where there is one.

`shed_total` counts refusals for the metrics exporter; each refusal is also
logged as `event=password_hash_shed` (at most one line a second, with a count).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import ctypes
import functools
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Literal, TypeVar

from server.auth import hash_quota

T = TypeVar("T")
Priority = Literal["idle", "low", "normal"]
"""`idle`: SCHED_IDLE, runs only on CPU nothing else wants and yields at once to any
woken thread; `low`: niceness 19; `normal`: the request path's own priority."""
log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
"""prctl option: the signal a process gets when its parent dies (Linux)."""

LOG_EVERY_S = 1.0
"""At most one `password_hash_shed` line a second per process (with the count since the last)."""


CLOSE_WAIT_S = 5.0
"""How long `HashPool.close()` waits for a killed process pool's manager thread."""


class Shed(Exception):
    """The pool is full: the hash was not run. Retry later."""


def lower_priority(priority: Priority) -> None:
    """Lower the calling thread's CPU priority (the hashing threads' initializer).

    Where per-thread priorities do not exist, the thread keeps the process's.
    """
    if priority == "normal" or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, 19)
        if priority == "idle" and hasattr(os, "sched_setscheduler"):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: this thread
    except OSError:  # pragma: no cover - not permitted here
        log.warning("could not lower the priority of hashing thread %d", tid)


def _die_with_parent(parent: int) -> None:
    """Have Linux kill this child when the server process dies, however it dies.

    A pool's children hold their own end of its call queue, so they would never see
    it close; and in their own session no signal to the server's group reaches them.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:  # pragma: no cover
        log.warning("could not tie hashing process %d to its parent", os.getpid())
    if os.getppid() != parent:  # pragma: no cover - the parent died before the prctl
        os._exit(1)


def lower_process_priority(priority: Priority, parent: int, cgroup: str | None = None) -> None:
    """Initializer of a hashing child process: lower its priority, out of the server's group.

    Linux shares CPU fairly between scheduling groups first (a session's autogroup,
    or a cgroup) and only then between the threads of a group by their priority. A
    low-priority hasher in the server's group still spends the group's share, which
    the request path then waits for while other groups run. So the child joins the
    launcher's hashing `cgroup` (lowest weight, CPU quota: `auth/hash_quota.py`) when
    there is one; else it starts its own session, hence its own autogroup, and makes that
    group as nice as it can be.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the server stops us
    _die_with_parent(parent)
    joined = cgroup is not None and hash_quota.join(cgroup)
    if not joined and priority != "normal" and hasattr(os, "setsid"):
        try:
            os.setsid()
            with open("/proc/self/autogroup", "w") as autogroup:
                autogroup.write("19")
        except OSError:  # no autogroups here: the thread priorities still apply
            pass
    lower_priority(priority)


class Admission:
    """A semaphore with a bounded wait queue and a bounded wait (one event loop)."""

    def __init__(self, slots: int, queue: int, max_wait_s: float) -> None:
        if slots < 1 or queue < 0 or max_wait_s < 0:
            raise ValueError("need slots >= 1, queue >= 0, max_wait_s >= 0")
        self._free = slots
        self._queue = queue
        self._max_wait_s = max_wait_s
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot now."""
        return sum(1 for waiter in self._waiters if not waiter.done())

    @property
    def full(self) -> bool:
        """Whether `enter()` would refuse at once."""
        return self._free == 0 and self.waiting >= self._queue

    async def enter(self) -> bool:
        """Take a slot, waiting in the queue if there is room; False if refused."""
        if self._free > 0 and not self.waiting:
            self._free -= 1
            return True
        if self.waiting >= self._queue:
            return False
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self._max_wait_s):
                await waiter
            return True
        except TimeoutError:
            return self._granted(waiter)  # handed a slot just as time ran out: keep it
        except asyncio.CancelledError:
            if self._granted(waiter):
                self.leave()
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def leave(self) -> None:
        """Give the slot back: to the first waiter, else to the free ones."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    @staticmethod
    def _granted(waiter: asyncio.Future[None]) -> bool:
        return waiter.done() and not waiter.cancelled()


def _executor(
    slots: int, priority: Priority, processes: bool, cgroup: str | None
) -> concurrent.futures.Executor:
    """`slots` low-priority hashing processes (joining `cgroup` if set) or threads."""
    if processes:
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=slots,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=lower_process_priority,
            initargs=(priority, os.getpid(), cgroup),
        )
    return concurrent.futures.ThreadPoolExecutor(
        max_workers=slots,
        thread_name_prefix="password-hash",
        initializer=lower_priority,
        initargs=(priority,),
    )


def _kill_children(executor: concurrent.futures.Executor) -> None:
    """SIGKILL a process pool's children (`kill_workers()` from Python 3.14 on)."""
    if not isinstance(executor, concurrent.futures.ProcessPoolExecutor):
        return
    kill_workers = getattr(executor, "kill_workers", None)
    if kill_workers is not None:  # pragma: no cover - Python 3.14+
        kill_workers()
        return
    processes: dict[int, multiprocessing.process.BaseProcess] = (
        getattr(executor, "_processes", None) or {}
    )
    for process in list(processes.values()):
        with contextlib.suppress(ProcessLookupError, ValueError):  # gone, or closed
            process.kill()


class HashPool:
    """Runs blocking hash functions on a few low-priority threads, shedding the excess.

    `shed_total` counts every refusal since start (for metrics); each refusal is
    also logged (`event=password_hash_shed`, at most once a second with a count).
    """

    def __init__(
        self,
        slots: int,
        queue: int,
        max_wait_s: float,
        priority: Priority,
        processes: bool = False,
        cgroup: str | None = None,
    ) -> None:
        """A pool whose threads or processes start on first use.

        `cgroup`: the folder of a cpu cgroup the hashing processes join (the launcher's,
        whose CPU quota it keeps at the idle cores: `auth/hash_quota.py`).
        """
        self._admission = Admission(slots, queue, max_wait_s)
        self._make_executor = functools.partial(_executor, slots, priority, processes, cgroup)
        self._executor = self._make_executor()
        self.shed_total = 0
        self._unlogged = 0
        self._logged_at = float("-inf")

    @property
    def full(self) -> bool:
        """Whether a hash submitted now would be shed at once."""
        return self._admission.full

    def refuse_if_full(self) -> None:
        """Shed now, before any other work, when a hash would be shed anyway."""
        if self._admission.full:
            self._shed()

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run `fn(*args)` on a hashing thread; raises Shed when the pool is full.

        The slot is held until the thread is done, even when the caller goes away,
        so no more than `slots` hashes ever run at once.
        """
        if not await self._admission.enter():
            self._shed()
        loop = asyncio.get_running_loop()
        executor = self._executor
        try:
            future = executor.submit(fn, *args)
        except BaseException as exc:
            self._admission.leave()
            self._replace_if_broken(executor, exc)
            raise
        future.add_done_callback(lambda _: loop.call_soon_threadsafe(self._admission.leave))
        try:
            return await asyncio.wrap_future(future)
        except concurrent.futures.BrokenExecutor as exc:
            self._replace_if_broken(executor, exc)
            raise

    def _replace_if_broken(self, executor: concurrent.futures.Executor, exc: BaseException) -> None:
        """A hashing process died (killed, out of memory): start afresh for the next call."""
        if isinstance(exc, concurrent.futures.BrokenExecutor) and executor is self._executor:
            log.warning("a password hashing process died; starting new ones")
            executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._make_executor()

    def close(self) -> None:
        """Stop hashing: threads finish their hash; processes are killed at once.

        Called once the server has stopped, so no caller waits for a hash any more.
        The processes are not asked to stop, they are killed: in a process that is
        itself a `multiprocessing` child (a server worker), the exit handlers close
        the pool's call queue while its manager thread may still be about to send
        the stop sentinels, which then never arrive, and the exit waits forever for
        children that idle in `call_queue.get()`.

        The pool's manager thread is then joined (it is done as soon as it sees its
        children dead): it closes its wake-up pipe on the way out, and Python 3.11's
        exit handler writes to that pipe without a lock, so an exit while it closed
        the pipe died with EBADF (CPython gh-125451, fixed in 3.12).
        """
        executor = self._executor
        manager: threading.Thread | None = getattr(executor, "_executor_manager_thread", None)
        _kill_children(executor)
        executor.shutdown(wait=False, cancel_futures=True)
        if manager is not None:
            manager.join(CLOSE_WAIT_S)
            if manager.is_alive():  # pragma: no cover - never seen
                log.warning("the password hashing pool did not stop in %.0f s", CLOSE_WAIT_S)

    def _shed(self) -> None:
        self.shed_total += 1
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            log.warning(
                "event=password_hash_shed shed=%d shed_total=%d waiting=%d",
                self._unlogged,
                self.shed_total,
                self._admission.waiting,
                extra={"event": "password_hash_shed", "shed": self._unlogged},
            )
            self._logged_at = now
            self._unlogged = 0
        raise Shed
