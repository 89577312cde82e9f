#!/usr/bin/env bash
# tests/plugins/sink-postgres/fault_connect.sh - the server cannot be
# used: connection refused, a wrong password, a missing database. Each is
# one clear error naming the host, port and database, with libpq's reason
# and never the password, and exit status 2 before any document is read.
# And the password's three sources: PGPASSWORD, the variable password_env
# names, and ~/.pgpass; none of them the INI file, and with none of them
# does the password show in any output (stderr at -vv, the JSON report).
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../e2e/lib.sh"
source "$HERE/pglib.sh"

password="pg-pw-$$-$RANDOM-never-print"
pg_start scram "$password"
mkdir docs
cp "$SRC/examples/corpus/faq.txt" "$SRC/examples/corpus/overview.md" docs/
write_conf pg.ini "$PG_PORT"
check_lacks "the INI holds no password" "$(cat pg.ini)" "$password"
unset PGPASSWORD PGPASSFILE PGHOST PGPORT PGUSER PGDATABASE

# expect_connect_error DESCRIPTION REASON_REGEX HOST_PORT DB SECRET ARGS...
expect_connect_error() {
    local what=$1 reason=$2 hostport=$3 db=$4 secret=$5
    shift 5
    sl -vv "$@"
    check_eq "$what: exit status" "$RC" 2
    check_contains "$what: names host and port" "$ERR" "$hostport"
    check_contains "$what: names the database" "$ERR" "database $db"
    check_contains "$what: gives the reason" "$ERR" "$reason"
    check_lacks "$what: no password on stderr" "$ERR" "$secret"
    check_lacks "$what: no password on stdout" "$OUT" "$secret"
    check_eq "$what: no report" "$OUT" ""
    check_eq "$what: one line of error" "$(grep -c 'cannot connect' <<<"$ERR")" 1
}

# A port nothing listens on.
free=$PG_PORT
while (exec 3<>"/dev/tcp/127.0.0.1/$free") 2>/dev/null; do free=$((free + 1)); done
export PGPASSWORD=$password
expect_connect_error "connection refused" "Connection refused" "127.0.0.1:$free" postgres "$password" \
    -c pg.ini --set "store.port=$free" run --json docs

wrong="wrong-$$-$RANDOM-secret"
export PGPASSWORD=$wrong
expect_connect_error "wrong password" "password authentication failed" "127.0.0.1:$PG_PORT" postgres "$wrong" \
    -c pg.ini run --json docs

export PGPASSWORD=$password
expect_connect_error "missing database" 'database "no_such_db" does not exist' "127.0.0.1:$PG_PORT" no_such_db \
    "$password" -c pg.ini --set store.dbname=no_such_db run --json docs

unset PGPASSWORD
expect_connect_error "no password at all" "password" "127.0.0.1:$PG_PORT" postgres "$password" \
    -c pg.ini run --json docs

check_eq "nothing was stored by the failed attempts" \
    "$(pg_sql "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'sluice_%'")" 0

# expect_run_ok DESCRIPTION PREFIX ARGS...: the run stores both files and
# prints no password.
expect_run_ok() {
    local what=$1 prefix=$2
    shift 2
    sl -vv -c pg.ini --set "store.table_prefix=$prefix" "$@" run --json docs
    check_eq "$what: exit status" "$RC" 0
    check_eq "$what: stored" "$(json .documents.stored)" 2
    check_lacks "$what: no password on stderr" "$ERR" "$password"
    check_lacks "$what: no password on stdout" "$OUT" "$password"
}

export PGPASSWORD=$password
expect_run_ok "password from PGPASSWORD" env_
unset PGPASSWORD

export SLUICE_PG_SECRET=$password
expect_run_ok "password from the variable password_env names" named_ --set store.password_env=SLUICE_PG_SECRET
unset SLUICE_PG_SECRET

mkdir home
printf '127.0.0.1:%s:*:postgres:%s\n' "$PG_PORT" "$password" >home/.pgpass
chmod 600 home/.pgpass
HOME=$T/home expect_run_ok "password from ~/.pgpass" pgpass_

# A password option in the INI is not a thing: it is refused as unknown,
# without echoing the value.
sl -c pg.ini --set "store.password=$password" run --json docs
check_eq "password option: exit status" "$RC" 2
check_contains "password option: refused as unknown" "$ERR" "password"
check_lacks "password option: value not echoed" "$ERR$OUT" "$password"

finish
