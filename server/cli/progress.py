"""A progress bar on stderr, without a dependency.

On a terminal the bar redraws in place; otherwise (logs, CI, `docker compose run -T`)
it prints a line at each tenth of the work, so long jobs still show they are moving.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30


class Progress:
    """Counts units of work towards a known total and draws the bar."""

    def __init__(self, label: str, total: int, unit: str = "", stream: TextIO | None = None):
        self._label = label
        self._total = max(total, 0)
        self._unit = unit
        self._stream = stream or sys.stderr
        self._done = 0
        self._started = time.monotonic()
        self._tty = self._stream.isatty()
        self._last_decile = -1

    @property
    def done(self) -> int:
        """Units counted so far."""
        return self._done

    def advance(self, count: int = 1) -> None:
        """Count `count` more units and redraw."""
        self._done += count
        self._draw()

    def finish(self) -> None:
        """Draw the final state (the total, even if fewer units were counted) and end the line."""
        self._done = max(self._done, self._total)
        self._draw(final=True)

    def _draw(self, final: bool = False) -> None:
        total = max(self._total, self._done)
        fraction = self._done / total if total else 1.0
        decile = int(fraction * 10)
        if not self._tty and decile == self._last_decile:
            return
        self._last_decile = decile
        filled = int(WIDTH * fraction)
        elapsed = time.monotonic() - self._started
        unit = f" {self._unit}" if self._unit else ""
        line = (
            f"{self._label} [{'#' * filled}{'.' * (WIDTH - filled)}] "
            f"{self._done:,}/{total:,}{unit} {elapsed:.1f}s"
        )
        if self._tty:
            self._stream.write("\r" + line + ("\n" if final else ""))
        else:
            self._stream.write(line + "\n")
        self._stream.flush()
