"""`envoy-config` (print Envoy's configuration) and `edge` (run Envoy alone).

In docker-compose.yml Envoy is its own service, from the same image as the server:
`edge` renders the configuration for `TODO_ENVOY_UPSTREAMS` (service DNS names, so
every replica is an endpoint) and then replaces itself with Envoy, which becomes the
container's PID 1 and handles SIGTERM itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from server import devcert, edge
from server.config import Settings

OK = 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `envoy-config` and `edge` on the CLI's subparsers."""
    config = commands.add_parser(
        "envoy-config",
        help="print the Envoy configuration for the given upstreams",
        description=envoy_config_command.__doc__,
    )
    config.add_argument("--output", "-o", type=Path, help="write to this file, not stdout")
    edge_ = commands.add_parser(
        "edge", help="run Envoy alone in front of remote server processes", description=__doc__
    )
    for command in (config, edge_):
        command.add_argument(
            "--upstream",
            action="append",
            metavar="HOST:PORT",
            help="a server process or a DNS name of several (repeatable; "
            "default: TODO_ENVOY_UPSTREAMS, else the local processes `serve` starts)",
        )
    config.set_defaults(handler=envoy_config_command)
    edge_.set_defaults(handler=edge_command)


def _with_upstreams(settings: Settings, args: argparse.Namespace) -> Settings:
    if not args.upstream:
        return settings
    return dataclasses.replace(
        settings, envoy_upstreams=tuple(args.upstream), require_secrets=False
    )


def envoy_config_command(settings: Settings, args: argparse.Namespace) -> int:
    """Render Envoy's configuration (listener, TLS, CORS, limits, upstream cluster).

    In development this makes the development certificate first, as `serve` does.
    """
    settings = _with_upstreams(settings, args)
    if settings.dev_tls_enabled:
        devcert.ensure(settings.data_dir)
    rendered = edge.render_envoy_config(settings)
    if args.output is None:
        sys.stdout.write(rendered)
    else:
        args.output.write_text(rendered, encoding="utf-8")
    return OK


def edge_command(settings: Settings, args: argparse.Namespace) -> int:
    """Write the configuration into TODO_DATA_DIR, then exec Envoy (it never returns)."""
    path = edge.write_envoy_config(_with_upstreams(settings, args))
    command = edge.envoy_command(path, base_id=settings.envoy_port)
    print(f"==> exec {' '.join(command)}", flush=True)
    os.execv(command[0], command)
    return OK  # pragma: no cover
