"""HashPool: bounded concurrency, a bounded and timed queue, shedding, low-priority threads."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from server import errors
from server.auth import passwords
from server.auth.hash_pool import Admission, HashPool, Priority, Shed
from server.auth.passwords import PasswordHasher


class Gate:
    """A blocking job that records how many run at once and waits to be opened."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.started = threading.Semaphore(0)

    def job(self, value: int) -> int:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.started.release()
        self.opened.wait(10)
        with self.lock:
            self.running -= 1
        return value


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.opened.set()


def make_pool(
    slots: int, queue: int, max_wait_s: float = 10.0, priority: Priority = "normal"
) -> HashPool:
    return HashPool(slots=slots, queue=queue, max_wait_s=max_wait_s, priority=priority)


async def _started(gate: Gate, count: int) -> None:
    for _ in range(count):
        assert await asyncio.to_thread(gate.started.acquire, True, 5)


async def test_runs_at_most_slots_at_once_and_queues_the_next(gate: Gate) -> None:
    pool = make_pool(slots=2, queue=2)
    jobs = [asyncio.create_task(pool.run(gate.job, i)) for i in range(4)]
    await _started(gate, 2)
    await asyncio.sleep(0.05)
    assert gate.running == 2  # two run, two wait
    assert pool.full
    gate.opened.set()
    assert await asyncio.gather(*jobs) == [0, 1, 2, 3]
    assert gate.most == 2
    assert pool.shed_total == 0
    pool.close()


async def test_sheds_at_once_past_the_queue(gate: Gate) -> None:
    pool = make_pool(slots=1, queue=1)
    running = asyncio.create_task(pool.run(gate.job, 1))
    await _started(gate, 1)
    queued = asyncio.create_task(pool.run(gate.job, 2))
    await asyncio.sleep(0.01)
    started = time.monotonic()
    with pytest.raises(Shed):
        await pool.run(gate.job, 3)
    assert time.monotonic() - started < 0.05  # no wait at all
    assert pool.shed_total == 1
    gate.opened.set()
    assert (await running, await queued) == (1, 2)
    pool.close()


async def test_a_queued_hash_is_shed_after_the_max_wait(gate: Gate) -> None:
    pool = make_pool(slots=1, queue=5, max_wait_s=0.1)
    running = asyncio.create_task(pool.run(gate.job, 1))
    await _started(gate, 1)
    started = time.monotonic()
    with pytest.raises(Shed):
        await pool.run(gate.job, 2)
    assert 0.09 <= time.monotonic() - started < 1.0
    gate.opened.set()
    assert await running == 1
    assert await pool.run(gate.job, 3) == 3  # the timed-out waiter left no slot behind
    pool.close()


async def test_a_cancelled_caller_keeps_the_slot_until_its_thread_is_done(gate: Gate) -> None:
    pool = make_pool(slots=1, queue=0)
    caller = asyncio.create_task(pool.run(gate.job, 1))
    await _started(gate, 1)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    with pytest.raises(Shed):  # the thread still hashes: still no room
        await pool.run(gate.job, 2)
    gate.opened.set()
    for _ in range(100):
        if not pool.full:
            break
        await asyncio.sleep(0.01)
    assert await pool.run(gate.job, 3) == 3
    pool.close()


async def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    admission = Admission(slots=1, queue=2, max_wait_s=10.0)
    assert await admission.enter()
    first = asyncio.create_task(admission.enter())
    second = asyncio.create_task(admission.enter())
    await asyncio.sleep(0.01)
    assert admission.waiting == 2
    first.cancel()
    admission.leave()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 1)
    assert admission.waiting == 0
    admission.leave()  # `second` is done: the slot is free again, nobody waits
    assert await asyncio.wait_for(admission.enter(), 0.1)


async def test_refuse_if_full_sheds_without_running_anything(gate: Gate) -> None:
    pool = make_pool(slots=1, queue=0)
    pool.refuse_if_full()  # room: nothing happens
    running = asyncio.create_task(pool.run(gate.job, 1))
    await _started(gate, 1)
    with pytest.raises(Shed):
        pool.refuse_if_full()
    assert pool.shed_total == 1
    gate.opened.set()
    await running
    pool.close()


async def test_shedding_is_logged_as_an_event_at_most_once_a_second(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    pool = make_pool(slots=1, queue=0)
    running = asyncio.create_task(pool.run(gate.job, 1))
    await _started(gate, 1)
    with caplog.at_level(logging.WARNING, logger="server.auth.hash_pool"):
        for _ in range(5):
            with pytest.raises(Shed):
                await pool.run(gate.job, 2)
    lines = [r for r in caplog.records if getattr(r, "event", None) == "password_hash_shed"]
    assert len(lines) == 1
    assert "event=password_hash_shed" in lines[0].getMessage()
    assert pool.shed_total == 5
    gate.opened.set()
    await running
    pool.close()


def _own_scheduling() -> tuple[int, int]:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), os.sched_getscheduler(0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority is Linux")
@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
@pytest.mark.parametrize(
    ("priority", "niceness", "policy"),
    [("idle", 19, os.SCHED_IDLE), ("low", 19, os.SCHED_OTHER), ("normal", None, os.SCHED_OTHER)],
)
async def test_hashers_run_below_the_caller(
    priority: Priority, niceness: int | None, policy: int, processes: bool
) -> None:
    caller = _own_scheduling()
    pool = HashPool(slots=1, queue=0, max_wait_s=1.0, priority=priority, processes=processes)
    assert await pool.run(_own_scheduling) == (niceness or caller[0], policy)
    assert _own_scheduling() == caller  # the event loop's thread keeps its priority
    pool.close()


async def test_a_busy_hasher_refuses_good_and_bad_passwords_alike(gate: Gate) -> None:
    pool = make_pool(slots=1, queue=0)
    hasher = PasswordHasher(rounds=4, pool=pool)
    stored = await hasher.hash("correct horse")
    running = asyncio.create_task(pool.run(gate.job, 1))
    await _started(gate, 1)
    answers = []
    for password in ("correct horse", "wrong horse!", "x" * 200):
        with pytest.raises(errors.ResourceExhausted) as caught:
            await hasher.verify(password, stored)
        answers.append((caught.value.message, caught.value.reason, caught.value.retry_after_s))
    with pytest.raises(errors.ResourceExhausted) as caught:
        hasher.refuse_if_busy()
    answers.append((caught.value.message, caught.value.reason, caught.value.retry_after_s))
    assert set(answers) == {
        (passwords.busy().message, "PASSWORD_CHECKS_BUSY", passwords.BUSY_RETRY_AFTER_S)
    }
    gate.opened.set()
    await running
    pool.close()


async def test_processes_hash_and_shed_like_threads() -> None:
    pool = HashPool(slots=1, queue=0, max_wait_s=1.0, priority="idle", processes=True)
    hasher = PasswordHasher(rounds=4, pool=pool)
    stored = await hasher.hash("correct horse")
    assert await hasher.verify("correct horse", stored)
    checks = [asyncio.create_task(hasher.verify("wrong horse!", stored)) for _ in range(3)]
    outcomes = await asyncio.gather(*checks, return_exceptions=True)
    assert False in outcomes  # one ran
    assert any(isinstance(o, errors.ResourceExhausted) for o in outcomes)  # the rest shed
    pool.close()


def _own_autogroup() -> str:
    return Path("/proc/self/autogroup").read_text().strip()


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="no autogroups here")
async def test_hashing_processes_get_their_own_nice_scheduling_group() -> None:
    pool = HashPool(slots=1, queue=0, max_wait_s=1.0, priority="idle", processes=True)
    theirs = await pool.run(_own_autogroup)
    assert theirs != _own_autogroup()
    assert theirs.endswith("nice 19"), theirs
    pool.close()


_SERVER = """
import asyncio, os
from server.auth.hash_pool import HashPool

async def main():
    pool = HashPool(slots=1, queue=0, max_wait_s=1.0, priority="idle", processes=True)
    print(await pool.run(os.getpid), flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_hashing_processes_die_with_their_server_process() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _SERVER], stdout=subprocess.PIPE, text=True
    ) as server:
        assert server.stdout is not None
        hasher = int(server.stdout.readline())
        assert _alive(hasher)
        server.kill()  # no clean shutdown at all
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(hasher):
        time.sleep(0.05)
    assert not _alive(hasher)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_a_dead_hashing_process_is_replaced() -> None:
    pool = HashPool(slots=1, queue=0, max_wait_s=1.0, priority="normal", processes=True)
    with pytest.raises(concurrent.futures.BrokenExecutor):
        await pool.run(os._exit, 1)  # the hashing process dies mid-call
    assert await pool.run(os.getpid) != os.getpid()  # a fresh one answers
    pool.close()


async def test_closing_a_process_pool_leaves_no_manager_thread_for_the_exit_handler() -> None:
    # Regression: the manager thread closed its wake-up pipe while Python 3.11's exit
    # handler wrote to it, and the worker exited with EBADF (1 exit in ~120 under load).
    others = set(threading.enumerate())
    pool = HashPool(slots=2, queue=0, max_wait_s=1.0, priority="normal", processes=True)
    await pool.run(pow, 2, 10)
    pool.close()
    managers = [
        thread
        for thread in set(threading.enumerate()) - others
        if isinstance(thread, concurrent.futures.process._ExecutorManagerThread)
    ]
    assert managers == []


def _use_then_close(priority: Priority) -> None:
    """A server worker's life in short: a `multiprocessing` child that hashes, closes, exits."""

    async def main() -> None:
        pool = HashPool(slots=2, queue=0, max_wait_s=1.0, priority=priority, processes=True)
        await pool.run(pow, 2, 10)
        pool.close()

    asyncio.run(main())


@pytest.mark.parametrize("priority", ["normal", "idle"])
def test_a_worker_process_that_closed_its_pool_exits(priority: Priority) -> None:
    # Regression: asking the hashing processes to stop raced with multiprocessing's
    # exit handlers, and the worker waited forever for them (4 exits in 5 hung).
    for _ in range(3):
        worker = multiprocessing.get_context("spawn").Process(
            target=_use_then_close, args=(priority,)
        )
        worker.start()
        worker.join(20)
        hung = worker.is_alive()
        if hung:
            worker.kill()
            worker.join()
        assert not hung
        assert worker.exitcode == 0
