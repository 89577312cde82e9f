#!/usr/bin/env bash
# bench/queue_capacity.sh - the job queue's own capacity on one PostgreSQL:
# lease and ack operations/s with 1, 2, 4 and 8 concurrent clients, the
# ceiling on how many `sluice run --queue` nodes one database can feed.
#
#   bench/queue_capacity.sh [--build DIR] [--host H --port PORT] [--jobs 50000]
#                           [--clients "1 2 4 8"] [--batches "1 16 64"]
#                           [--seconds 2] [--trials 3] [--chunk-rows 0]
#                           [--unlogged] [--prefix benchq_]
#
# Without --port it makes its own PostgreSQL cluster with
# tests/plugins/sink-postgres/pgcluster.sh (initdb in /tmp, 127.0.0.1, a free
# port, fsync on as a real server runs) and removes it at the end; with
# --port it uses the server already listening there, on --host (127.0.0.1)
# as user postgres, database postgres, or what PGUSER and PGDATABASE say
# (tables benchq_* are made there and dropped: point it at a scratch
# database of the server you mean to size). The measures are
# bench/queue_capacity.c's (built here: cmake --build DIR --target
# bench-queue-capacity): lease batches of B with FOR UPDATE SKIP LOCKED,
# acks (the store transaction reduced to one document row, with the queue's
# fenced ack; and without it, for the ack's own cost), and lease + acks
# together as a node does them, all with sink-postgres's own tables and
# queue statements. Each measure runs --trials times: the table shows the
# median trial and the range. It prints one Markdown table. Not run in CI:
# timings are for people.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$here/../build
port=""
args=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --build) build=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --host | --jobs | --clients | --batches | --seconds | --trials | --chunk-rows | --prefix) args+=("$1" "$2"); shift 2 ;;
    --unlogged) args+=("$1"); shift ;;
    -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "bench/queue_capacity.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ -f $build/CMakeCache.txt ]] || {
    echo "no configured build at $build: cmake -S . -B build first (or --build DIR)" >&2
    exit 2
}
build=$(cd "$build" && pwd)
cmake --build "$build" --target bench-queue-capacity -j2 >/dev/null

cluster=""
cleanup() {
    if [[ -n $cluster ]]; then bash "$here/../tests/plugins/sink-postgres/pgcluster.sh" stop "$cluster" || true; fi
}
trap cleanup EXIT
if [[ -z $port ]]; then
    cluster=$(mktemp -u /tmp/slqcap.XXXXXX)
    port=$(PGCLUSTER_FSYNC=on bash "$here/../tests/plugins/sink-postgres/pgcluster.sh" start "$cluster")
fi
echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
"$build/bench/bench-queue-capacity" --port "$port" --user "${PGUSER:-postgres}" --dbname "${PGDATABASE:-postgres}" \
    "${args[@]}"
