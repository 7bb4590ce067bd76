"""The command line: `python -m server [serve|migrate|downgrade|check|seed|backup|restore|...]`.

Every command reads the same settings as the server (DATABASE_URL, else the embedded
PostgreSQL in TODO_DATA_DIR; `<NAME>_FILE` for secrets). Exit codes:

    0  done
    1  the command failed (not at head, a failed dump, a non-empty restore target, ...)
    2  bad usage or configuration (argparse's own code too)
    3  the database cannot be reached
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence

import alembic.util
import psycopg
import sqlalchemy.exc

from server import errors, supervisor
from server.cli import backup, edge_config, pg_tools, probe, schema, seed
from server.config import ConfigError, Settings

OK, FAILED, USAGE, UNREACHABLE, INTERRUPTED = 0, 1, 2, 3, 130


def build_parser() -> argparse.ArgumentParser:
    """The parser with every command; each sets `handler(settings, args) -> exit code`."""
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description="The todo service and its operator commands. Without a command: serve.",
        epilog=__doc__.split("Exit codes:", 1)[1].join(("Exit codes:", "")),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the database (embedded unless DATABASE_URL), the server processes and Envoy",
        description=supervisor.__doc__,
    )
    serve.set_defaults(handler=serve_command, signs_tokens=True)
    schema.add_commands(commands)
    seed.add_command(commands)
    backup.add_commands(commands)
    probe.add_command(commands)
    edge_config.add_commands(commands)
    return parser


def serve_command(settings: Settings, args: argparse.Namespace) -> int:
    """`serve`: run everything until SIGINT or SIGTERM (what `make run` does)."""
    supervisor.run(settings)
    return OK


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run one command and return its exit code.

    Args:
        argv: The arguments after the program name (default: `sys.argv[1:]`); none: serve.
        env: The environment to read settings from (default: `os.environ`).
    """
    arguments = list(sys.argv[1:] if argv is None else argv) or ["serve"]
    parser = build_parser()
    args = parser.parse_args(arguments)
    if not hasattr(args, "handler"):  # only top-level options, none of which runs anything
        parser.print_help(sys.stderr)
        return USAGE
    logging.basicConfig(level=logging.WARNING, format="    %(message)s")
    try:
        # Only `serve` signs and verifies tokens: the rest run without the JWT key.
        settings = Settings.from_env(env, require_secrets=getattr(args, "signs_tokens", False))
        return int(args.handler(settings, args))
    except ConfigError as error:
        return _fail(USAGE, f"configuration: {error}")
    except errors.InvalidArgument as error:
        return _fail(USAGE, str(error))
    except (psycopg.OperationalError, sqlalchemy.exc.OperationalError) as error:
        cause = getattr(error, "orig", None) or error  # SQLAlchemy wraps psycopg's error
        lines = str(cause).strip().splitlines()
        return _fail(
            UNREACHABLE, f"cannot reach the database: {lines[0] if lines else repr(cause)}"
        )
    except (pg_tools.ToolError, alembic.util.CommandError) as error:
        return _fail(FAILED, str(error))
    except KeyboardInterrupt:
        return _fail(INTERRUPTED, "interrupted")


def _fail(code: int, message: str) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code
