"""The one scrape endpoint for every server process, served by the launcher.

The launcher (`supervisor.py`) calls `prepare()` before it spawns the workers: the
multiprocess folder is wiped (a fresh start begins at zero, and no file of a process of
an earlier run is summed in) and `PROMETHEUS_MULTIPROC_DIR` is set in its environment,
which the spawned workers inherit before they import prometheus-client. `start()` serves
`/metrics` from a `MultiProcessCollector` over that folder on the metrics address (never
the API port). When a worker dies, `mark_dead()` drops its live gauges; its counters and
histograms stay, so the totals never go backwards.

`scrape_config()` renders a Prometheus configuration that scrapes this endpoint and
Envoy's own `/stats/prometheus` on its admin port.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, multiprocess, start_http_server

from server.config import Settings

ENV = "PROMETHEUS_MULTIPROC_DIR"
ALERT_RULES = Path(__file__).resolve().parents[2] / "ops" / "alerts.yml"
"""The checked-in alert rules (in a source checkout; an installed wheel does not carry ops/)."""


def prepare(settings: Settings) -> Path:
    """Create an empty multiprocess folder under the data folder and point workers at it."""
    directory = (settings.data_dir / "prometheus").resolve()
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[ENV] = str(directory)
    return directory


def start(settings: Settings, directory: Path) -> tuple[WSGIServer, threading.Thread]:
    """Serve `/metrics` (every worker's samples, summed) at the metrics address."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return start_http_server(settings.metrics_port, settings.metrics_host, registry)


def mark_dead(pid: int, directory: Path) -> None:
    """Forget a dead worker's live gauges (its counters keep counting in the totals)."""
    multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]


def metrics_url(settings: Settings) -> str:
    """Where the scrape endpoint answers."""
    return f"http://{settings.metrics_host}:{settings.metrics_port}/metrics"


def scrape_config(settings: Settings, interval_s: float = 15.0) -> str:
    """A Prometheus configuration scraping the service and Envoy (YAML; JSON is YAML)."""
    config = {
        "global": {
            "scrape_interval": f"{interval_s:g}s",
            "evaluation_interval": f"{interval_s:g}s",
        },
        "rule_files": [str(path) for path in (ALERT_RULES,) if path.is_file()],
        "scrape_configs": [
            {
                "job_name": "todo",
                "metrics_path": "/metrics",
                "static_configs": [
                    {"targets": [f"{settings.metrics_host}:{settings.metrics_port}"]}
                ],
            },
            {
                "job_name": "envoy",
                "metrics_path": "/stats/prometheus",
                "static_configs": [{"targets": [f"127.0.0.1:{settings.envoy_admin_port}"]}],
            },
        ],
    }
    return json.dumps(config, indent=2) + "\n"
