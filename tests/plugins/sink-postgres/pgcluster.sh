#!/usr/bin/env bash
# tests/plugins/sink-postgres/pgcluster.sh - a throwaway PostgreSQL cluster
# for sink-postgres's tests: Debian's server binaries, a fresh initdb in a
# temporary folder, listening on 127.0.0.1 on a free port and on a Unix
# socket in that folder, removed again by `stop`.
#
#   pgcluster.sh start DIR [trust|scram PASSWORD]   prints the port
#   pgcluster.sh restart DIR                        pg_ctl restart -m fast
#   pgcluster.sh halt DIR                           pg_ctl stop -m fast, DIR kept
#   pgcluster.sh resume DIR                         starts a halted cluster again
#   pgcluster.sh stop DIR                           stops it and removes DIR
#   pgcluster.sh psql DIR [PSQL ARGS...]            psql as the superuser
#
# DIR must not exist yet (mktemp -u, say); keep it short, since the socket
# path must fit in 107 bytes. PostgreSQL refuses to run as root: as root
# (CI runs so) the server runs as the `postgres` user that Debian's package
# creates, and DIR is made for it. With `scram` the superuser `postgres`
# needs PASSWORD over TCP (scram-sha-256); the socket stays `trust`, which
# is how `psql` here gets in. The cluster is made with UTF8 and the C
# locale, so results do not depend on the machine's locale.
set -euo pipefail

PG_BIN=${PG_BIN:-}
if [[ -z $PG_BIN ]]; then
    for v in 17 16 15 14; do
        if [[ -x /usr/lib/postgresql/$v/bin/initdb ]]; then
            PG_BIN=/usr/lib/postgresql/$v/bin
            break
        fi
    done
fi
die() {
    echo "pgcluster: $*" >&2
    exit 1
}
[[ -n $PG_BIN && -x $PG_BIN/initdb ]] ||
    die "PostgreSQL's server binaries are not installed (Debian: apt-get install postgresql; scripts/deps.sh)"

# as_pg CMD...: runs CMD as the cluster's owner.
# From /, which the postgres user can always enter (the caller's folder may
# be closed to it).
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cmd=${1:-}
dir=${2:-}
[[ -n $cmd && -n $dir ]] || die "usage: $0 start|restart|halt|resume|stop|psql DIR ..."

case $cmd in
start)
    auth=${3:-trust}
    password=${4:-}
    [[ ! -e $dir ]] || die "$dir exists already"
    [[ $auth == trust || ($auth == scram && -n $password) ]] || die "auth must be trust, or scram PASSWORD"
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || die "running as root, and there is no postgres user to run the server as"
        install -d -o postgres -g postgres -m 700 "$dir"
    else
        install -d -m 700 "$dir"
    fi
    pwfile=()
    if [[ $auth == scram ]]; then
        printf '%s\n' "$password" | as_pg tee "$dir/pw" >/dev/null
        pwfile=(--pwfile="$dir/pw" --auth-host=scram-sha-256 --auth-local=trust)
    else
        pwfile=(--auth=trust)
    fi
    as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C "${pwfile[@]}" >"$dir/initdb.log" 2>&1 ||
        die "initdb failed: $(tail -5 "$dir/initdb.log")"
    rm -f "$dir/pw"
    # A random free port; the server may still lose a race for it, so retry.
    for try in 1 2 3 4 5 6 7 8; do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        port_in_use "$port" && continue
        if as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=${PGCLUSTER_FSYNC:-off} -c max_connections=60" \
            >/dev/null 2>&1; then
            echo "$port" | as_pg tee "$dir/port" >/dev/null
            echo "$port"
            exit 0
        fi
        [[ $try -lt 8 ]] || die "the server did not start: $(tail -5 "$dir/server.log")"
    done
    ;;
restart)
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -w -t 60 -m fast restart >/dev/null 2>&1 ||
        die "restart failed: $(tail -5 "$dir/server.log")"
    ;;
halt)
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -w -t 60 -m fast stop >/dev/null 2>&1 ||
        die "stop failed: $(tail -5 "$dir/server.log")"
    ;;
resume)
    # the port and options it was started with
    port=$(cat "$dir/port")
    as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=${PGCLUSTER_FSYNC:-off} -c max_connections=60" \
        >/dev/null 2>&1 || die "start failed: $(tail -5 "$dir/server.log")"
    ;;
stop)
    if [[ -d $dir/data ]]; then
        as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -w -t 60 -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
psql)
    shift 2
    port=$(cat "$dir/port")
    as_pg psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres "$@"
    ;;
*) die "unknown command $cmd" ;;
esac
