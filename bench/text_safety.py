"""Per-call cost of the control-character check (server/text_safety.py).

Prints microseconds per check for typical requests, next to the cost of
parsing the same request from its wire bytes (what every call pays anyway),
measured side by side in one run: compare the ratios, not absolute numbers.

    PYTHONPATH=.:generated .venv/bin/python bench/text_safety.py
"""

from __future__ import annotations

import functools
import timeit
from collections.abc import Callable

from google.protobuf import message, timestamp_pb2
from todo.v1 import task_service_pb2 as ts

from server import text_safety


def _requests() -> dict[str, message.Message]:
    new = ts.NewTask(
        title="Buy milk",
        description="two litres, semi-skimmed " * 8,
        category="home",
        tags=["shopping", "errands", "weekly"],
        due_at=timestamp_pb2.Timestamp(seconds=1_800_000_000),
    )
    return {
        "GetTask": ts.GetTaskRequest(user_id="me", task_id="0b0e3c2a-6a4e-4b8e-9c7e-5d1f2a3b4c5d"),
        "ListTasks (3 filters)": ts.ListTasksRequest(
            user_id="me", q="milk", tag=["home"], page_size=50, order_by="due_at desc"
        ),
        "CreateTask": ts.CreateTaskRequest(
            user_id="me",
            title=new.title,
            description=new.description,
            category=new.category,
            tags=list(new.tags),
            due_at=new.due_at,
        ),
        "BatchCreate x500": ts.BatchCreateTasksRequest(
            user_id="me", tasks=[new] * 500, request_id="r-1"
        ),
    }


def _per_call_us(call: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


def main() -> None:
    print("| request | check µs | parse µs | check / parse |")
    print("| --- | ---: | ---: | ---: |")
    for name, request in _requests().items():
        number = 200 if "x500" in name else 20_000
        check_us = _per_call_us(functools.partial(text_safety.check, request), number)
        parse = functools.partial(type(request).FromString, request.SerializeToString())
        parse_us = _per_call_us(parse, number)
        print(f"| {name} | {check_us:.2f} | {parse_us:.2f} | {check_us / parse_us:.2f} |")


if __name__ == "__main__":
    main()
