#!/usr/bin/env bash
# tests/providers-e2e/dry_run.sh - `sluice run --dry-run` walks, hashes and
# looks up, and says what a run would store (new), replace (changed), skip
# and prune, without calling a provider or writing anything: the SQLite
# file is byte-identical (sha256sum) and the fake provider saw no request.
# The run that follows does what the dry run said. The same against
# PostgreSQL: its tables' digest and the runs table are unchanged.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"
source "$HERE/../plugins/sink-postgres/pglib.sh"
trap 'rc=$?; stop_fakes; (exit $rc); pg_cleanup' EXIT

export OPENAI_API_KEY="sk-dry-$$-$RANDOM"
start_fake f
openai_ini o.ini
args=(-c o.ini --set "summarizer.base_url=${URL[f]}/v1" --set "embedder.base_url=${URL[f]}/v1")
db=.sluice/store.db

mkdir docs
for i in 1 2 3 4 5; do printf '# Doc %s\n\nSome words about %s.\n' "$i" "$i" >"docs/d$i.md"; done
sl_ok "${args[@]}" run --json docs
check_eq "first run stores 5" "$(json .documents.stored)" 5

# changes: one edited, one new, one deleted, one unreadable
printf '\nAn edit.\n' >>docs/d1.md
printf '# Six\n\nNew.\n' >docs/d6.md
rm docs/d5.md
printf '# Locked\n' >docs/locked.md
chmod 000 docs/locked.md

before=$(sha256sum "$db" | cut -d' ' -f1)
requests=$(fake_stats f .requests)
rows=$(sql "$db" 'SELECT count(*) FROM documents;')

sl "${args[@]}" run --dry-run --prune docs
if [[ $(id -u) -eq 0 ]]; then locked_fails=0; else locked_fails=1; fi
if [[ $locked_fails == 1 ]]; then
    check_eq "dry run: exit 1 (a document would fail)" "$RC" 1
    check_contains "dry run: the unreadable one would fail, with why" "$OUT" '^fail +docs/locked\.md: cannot open'
else
    check_eq "dry run: exit 0" "$RC" 0
fi
check_contains "dry run: d1 would be replaced" "$OUT" '^replace +docs/d1\.md$'
check_contains "dry run: d6 is new" "$OUT" '^new +docs/d6\.md$'
check_contains "dry run: d2 is skipped" "$OUT" '^skip +docs/d2\.md$'
check_contains "dry run: d5 would be pruned" "$OUT" '^prune +docs/d5\.md$'
check_contains "dry run: the summary" "$OUT" 'dry run: [12] new, 1 to replace, 3 unchanged \(skipped\).* 1 to prune; nothing was called or written'
check_eq "dry run: the store file is byte-identical" "$(sha256sum "$db" | cut -d' ' -f1)" "$before"
check "dry run: no WAL left behind" test ! -e "$db-wal"
check_eq "dry run: the fake provider saw no request" "$(fake_stats f .requests)" "$requests"
check_eq "dry run: the same rows" "$(sql "$db" 'SELECT count(*) FROM documents;')" "$rows"

sl "${args[@]}" run --dry-run --prune --json docs
check_eq "dry run --json: new" "$(json '.new | join(" ")')" "$([[ $locked_fails == 1 ]] && echo docs/d6.md || echo 'docs/d6.md docs/locked.md')"
check_eq "dry run --json: replaced" "$(json '.replaced | join(" ")')" "docs/d1.md"
check_eq "dry run --json: skipped" "$(json '.documents.skipped')" 3
check_eq "dry run --json: pruned" "$(json '.pruned | join(" ")')" "docs/d5.md"
check_eq "dry run --json: failed" "$(json '.documents.failed')" "$locked_fails"
check_eq "dry run --json: still byte-identical" "$(sha256sum "$db" | cut -d' ' -f1)" "$before"
check_eq "dry run --json: still no request" "$(fake_stats f .requests)" "$requests"

# without --prune nothing is said about pruning
sl "${args[@]}" run --dry-run docs
check_lacks "dry run without --prune: no prune line" "$OUT" "prune "

# the real run does what the dry run said
chmod 644 docs/locked.md
rm docs/locked.md
sl_ok "${args[@]}" run --prune --json docs
check_eq "the run: stored = new + replaced" "$(json .documents.stored)" 2
check_eq "the run: skipped" "$(json .documents.skipped)" 3
check_eq "the run: pruned" "$(json .documents.pruned)" 1
check_gt "the run called the provider" "$(fake_stats f .requests)" "$requests"

# PostgreSQL: a dry run changes no row, not even the runs table
pg_start
write_conf pg.ini "$PG_PORT"
mkdir pdocs
for i in 1 2 3; do printf '# P %s\n\nwords %s\n' "$i" "$i" >"pdocs/p$i.md"; done
sl_ok -c pg.ini run pdocs
printf '\nchanged\n' >>pdocs/p1.md
rm pdocs/p3.md
d1=$(pg_digest sluice_)
runs=$(pg_sql "SELECT count(*) || ' ' || coalesce(max(run_id), 0) FROM sluice_runs")
seen=$(pg_sql "SELECT string_agg(uri || '=' || coalesce(seen_run, 0), ',' ORDER BY uri) FROM sluice_documents")
sl -c pg.ini run --dry-run --prune pdocs
check_eq "postgres dry run: exit 0" "$RC" 0
check_contains "postgres dry run: p1 would be replaced" "$OUT" '^replace +pdocs/p1\.md$'
check_contains "postgres dry run: p2 skipped" "$OUT" '^skip +pdocs/p2\.md$'
check_contains "postgres dry run: p3 would be pruned" "$OUT" '^prune +pdocs/p3\.md$'
check_eq "postgres dry run: documents and chunks unchanged" "$(pg_digest sluice_)" "$d1"
check_eq "postgres dry run: no run recorded" "$(pg_sql "SELECT count(*) || ' ' || coalesce(max(run_id), 0) FROM sluice_runs")" "$runs"
check_eq "postgres dry run: no document marked seen" \
    "$(pg_sql "SELECT string_agg(uri || '=' || coalesce(seen_run, 0), ',' ORDER BY uri) FROM sluice_documents")" "$seen"

finish
