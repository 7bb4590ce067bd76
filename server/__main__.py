"""`python -m server`: read the settings, then run everything."""

from server import supervisor
from server.config import Settings

if __name__ == "__main__":
    supervisor.run(Settings.from_env())
