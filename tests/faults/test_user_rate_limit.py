"""The per-user limit holds across processes: the whole limit for a user, wherever Envoy sends it.

A small limit (240 a minute, bursts of 4) keeps this short. Users paced at 90% of it must
never be refused; users at 120% must be. First with both processes serving, then with one
of them stopped (SIGSTOP: Envoy's health checks take it out, its users move to the other).
"""

from __future__ import annotations

import signal
import threading
import time

import grpc
import httpx
import pytest
from todo.v1 import user_pb2, user_pb2_grpc

from tests.e2e.conftest import Account, register_and_login
from tests.faults.conftest import FaultStack, send, summary, wait_for

pytestmark = pytest.mark.faults
PER_MINUTE = 240
BURST = 4
PHASE_S = 12.0


def _paced_user(stack: FaultStack, account: Account, fraction: float, refused: list[int]) -> None:
    """Call GetUser at `fraction` of the limit for PHASE_S, alternating REST and gRPC.

    Calls start `interval` apart. Under the limit a call that starts late moves the next
    one later (the user never goes faster than its pace); over it, the user keeps to its
    schedule and catches up."""
    interval = 60.0 / (PER_MINUTE * fraction)
    count = 0
    with (
        httpx.Client(base_url=stack.rest, timeout=10, headers=account.headers) as http,
        grpc.insecure_channel(stack.grpc_target) as channel,
    ):
        users = user_pb2_grpc.UserServiceStub(channel)
        grpc.channel_ready_future(channel).result(timeout=10)  # connections up before the clock
        assert http.get("/healthz").status_code == 200
        start = due = time.monotonic()
        while due < start + PHASE_S:
            time.sleep(max(0.0, due - time.monotonic()))
            due = (due if fraction > 1 else time.monotonic()) + interval  # sent now: next is due
            if count % 2:
                status = http.get("/api/v1/users/me").status_code
                if status == 429:
                    refused.append(count)
                else:
                    assert status == 200, status
            else:
                try:
                    users.GetUser(
                        user_pb2.GetUserRequest(user_id="me"), metadata=account.metadata, timeout=10
                    )
                except grpc.RpcError as exc:
                    assert exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, exc  # type: ignore[attr-defined]
                    refused.append(count)
            count += 1


def _phase(
    stack: FaultStack, steady: list[Account], greedy: list[Account]
) -> tuple[list[int], list[int]]:
    """Refusals per user: (steady users at 90%, greedy users at 120%)."""
    refusals: dict[str, list[int]] = {a.user_id: [] for a in steady + greedy}
    threads = [
        threading.Thread(target=_paced_user, args=(stack, a, 0.9, refusals[a.user_id]))
        for a in steady
    ] + [
        threading.Thread(target=_paced_user, args=(stack, a, 1.2, refusals[a.user_id]))
        for a in greedy
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PHASE_S + 30)
    return [len(refusals[a.user_id]) for a in steady], [len(refusals[a.user_id]) for a in greedy]


def test_users_under_the_limit_pass_users_over_it_are_refused(fault_stack) -> None:
    env = {"TODO_USER_RATE_LIMIT": str(PER_MINUTE), "TODO_USER_RATE_BURST": str(BURST)}
    with fault_stack(env) as stack:
        with httpx.Client(base_url=stack.rest, timeout=10) as http:
            steady = [register_and_login(http) for _ in range(4)]
            greedy = [register_and_login(http) for _ in range(2)]
        both = _phase(stack, steady, greedy)

        stopped = stack.worker_pid(0)
        send(stopped, signal.SIGSTOP)
        try:
            wait_for(lambda: stack.envoy_healthy_hosts() == 1, timeout=20)
            one = _phase(stack, steady, greedy)
        finally:
            send(stopped, signal.SIGCONT)

        summary(
            steady_refused_two_processes=both[0],
            greedy_refused_two_processes=both[1],
            steady_refused_one_process=one[0],
            greedy_refused_one_process=one[1],
        )
        for steady_refused, greedy_refused in (both, one):
            assert steady_refused == [0] * len(steady), steady_refused
            assert all(n > 0 for n in greedy_refused), greedy_refused
