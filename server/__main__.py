"""`python -m server [COMMAND]`: the command line in `server/cli/main.py`; `serve` by default."""

import sys

from server.cli import main

if __name__ == "__main__":
    sys.exit(main.main())
