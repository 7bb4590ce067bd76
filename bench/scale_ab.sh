#!/usr/bin/env bash
# A/B/A/B of two checkouts on one database that `bench/data_scale.py --keep` loaded.
#
#   bench/scale_ab.sh URL BASE_CHECKOUT BASE_REVISION [RUNS] [ONLY]
#
# A: BASE_CHECKOUT (e.g. `git worktree add --detach /tmp/base main`) with the database
# downgraded to BASE_REVISION (the newest migration it has); B: this checkout with the
# database at head. Both sides run this checkout's bench/data_scale.py (--existing, --only),
# copied into the base checkout, so only the server code and the schema differ. Each arm
# prints its p50/p99 table with the time and /proc/loadavg. The database is left at head.
set -euo pipefail
url=$1 base=$2 base_revision=$3 runs=${4:-30} only=${5:-"first page,due in,reminders,q="}
here=$(cd "$(dirname "$0")/.." && pwd)
py=$here/.venv/bin/python
cp "$here/bench/data_scale.py" "$base/bench/data_scale.py"
# The base's Executor may not take `prepare`: its side calls it without.
sed -i 's/, prepare=prepare)/)/' "$base/bench/data_scale.py"
migrate() {  # migrate upgrade|downgrade REVISION
    (cd "$here" && "$py" -c "import sys; sys.path[:0] = ['.', 'generated']
from server.db import database
database.$1(sys.argv[1], sys.argv[2])" "$url" "$2")
}
arm() {  # arm LABEL CHECKOUT
    echo "### $1 $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    "$py" "$2/bench/data_scale.py" --existing "$url" --runs "$runs" --only "$only" \
        | sed -n '/^| shape/,$p'
}
for round in 1 2; do
    migrate downgrade "$base_revision"
    arm "A$round (base)" "$base"
    migrate run_migrations head
    arm "B$round ($(git -C "$here" rev-parse --short HEAD))" "$here"
done
