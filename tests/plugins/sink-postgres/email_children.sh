#!/usr/bin/env bash
# tests/plugins/sink-postgres/email_children.sh - documents found inside a
# document, in a real PostgreSQL: an e-mail's attachments are stored with
# their parent; a rerun skips the e-mail and --prune keeps its children
# (the lookup of an unchanged parent marks them seen); a changed e-mail
# keeps its unchanged attachment, and --prune removes the one that left
# it; a deleted e-mail is pruned with its children.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../e2e/lib.sh"
source "$HERE/pglib.sh"
MAKE="python3 $SRC/tests/e2e/make_email.py"

pg_start
write_conf pg.ini "$PG_PORT"
email_route >>pg.ini
run() { sl -c pg.ini --set 'sluice.include=*.eml' "$@"; }
printf '# Alpha\n\nThe alpha attachment.\n' >a.md
printf '# Beta\n\nThe beta attachment.\n' >b.md
mkdir mail
$MAKE mail mail/m.eml "Two attachments" a.md=a.md b.md=b.md

run run --json mail
check_eq "first run: exit 0" "$RC" 0
check_eq "first run: the e-mail and two attachments" "$(json .documents.stored)" 3
check_eq "children name their parent" \
    "$(pg_sql "SELECT count(*) FROM sluice_documents WHERE metadata->>'parent' = 'mail/m.eml'")" 2

run run --json --prune mail
check_eq "rerun: the e-mail skipped" "$(json .documents.skipped)" 1
check_eq "rerun --prune: nothing pruned" "$(json .documents.pruned)" 0
check_eq "rerun: its children kept" "$(pg_sql "SELECT count(*) FROM sluice_documents")" 3

$MAKE mail mail/m.eml "One attachment left" a.md=a.md
run run --json --prune mail
check_eq "changed: the e-mail stored" "$(json .documents.stored)" 1
check_eq "changed: the unchanged attachment skipped" "$(json .documents.skipped)" 1
check_eq "changed: the attachment that left pruned" "$(json .documents.pruned)" 1
check_eq "changed: b.md gone" "$(pg_sql "SELECT count(*) FROM sluice_documents WHERE uri = 'mail/m.eml#b.md'")" 0

rm mail/m.eml
run run --json --prune mail
check_eq "deleted: the e-mail and its child pruned" "$(json .documents.pruned)" 2
check_eq "deleted: nothing left" "$(pg_sql "SELECT count(*) FROM sluice_documents")" 0

finish
