"""Envoy alone, with no server process behind it: the edge's own 503s.

Rendered from the same template and Settings as the real stack, its one upstream port
has nothing listening, so health checks fail, `/healthz` is 503 and every API call gets
503 UPSTREAM_UNAVAILABLE ("no healthy upstream") from Envoy itself. The `lone_edge`
fixture in conftest.py runs it for the session.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from server import edge
from server.config import Settings


@contextlib.contextmanager
def running_edge(data: Path, base_port: int, origins: Sequence[str]) -> Iterator[str]:
    """Run Envoy on base_port + 1 (admin + 2), upstream base_port, until the block ends.

    Yields `http://127.0.0.1:<port>`; CORS allows `origins`.
    """
    settings = Settings(
        data_dir=data,
        workers=1,
        grpc_port=base_port,  # nothing listens here
        envoy_port=base_port + 1,
        envoy_admin_port=base_port + 2,
        cors_origins=tuple(origins),
        dev_tls=False,
    )
    config = edge.write_envoy_config(settings)
    log = data / "envoy.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            edge.envoy_command(config, base_id=settings.envoy_port), stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{settings.envoy_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                httpx.get(url + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
