#!/usr/bin/env bash
# tests/e2e/email.sh - e-mail end to end, and documents found inside
# documents: an .eml made at test time (Python's email package) with text
# and HTML alternatives and a Markdown, a PDF (mutool) and a CSV attachment
# is stored with its attachments, each a document of its own with a
# "parent"; a rerun skips it all; a changed e-mail replaces its children
# and --prune removes the one that left it; a deleted e-mail takes its
# children with it under --prune; an mbox's messages become documents of
# their own; an e-mail with more attachments than [sluice] max_children
# fails alone with the reason, within the memory budget.
source "$(dirname "$0")/lib.sh"
MAKE="python3 $SRC/tests/e2e/make_email.py"
command -v mutool >/dev/null || {
    echo "FAIL: mutool is not installed (scripts/deps.sh installs mupdf-tools)" >&2
    exit 1
}

cat >conf.ini <<INI
[sluice]
threads = 2
memory_budget = 64M
include = *.md *.txt *.eml *.mbox *.pdf
[route.text]
media = text/markdown text/plain
stages = markdown chunker embedder
sink = store
[route.email]
media = message/rfc822 application/mbox
stages = email chunker embedder
sink = store
[route.pdf]
media = application/pdf
stages = pdf chunker embedder
sink = store
[markdown]
plugin = parse-markdown
[email]
plugin = parse-email
[pdf]
plugin = parse-pdf
[chunker]
plugin = chunk-text
[embedder]
plugin = embed-hash
dimension = 64
[store]
plugin = sink-sqlite
path = $T/store.db
INI
db=$T/store.db
run() { sl -c conf.ini "$@"; }

cat >page.txt <<'PDF'
%%MediaBox 0 0 612 792
%%Font F1 Helvetica
BT /F1 12 Tf 72 700 Td (Quarterly lighthouse inspection of the northern breakwater) Tj ET
PDF
mutool create -o report.pdf page.txt
printf '# Harbour plan\n\nThe harbour plan covers dredging the inner basin.\n' >plan.md
printf 'station,depth\nnorth,12\nsouth,9\n' >depths.csv
mkdir mail
$MAKE mail mail/notes.eml "The engine needs new gears" plan.md=plan.md report.pdf=report.pdf depths.csv=depths.csv

# --- first run: the e-mail and its attachments ---
run run --json mail
check_eq "first run: exit 0" "$RC" 0
check_eq "first run: the e-mail, the Markdown and the PDF stored" "$(json .documents.stored)" 3
check_eq "first run: three documents found inside it" "$(json .documents.children)" 3
check_eq "first run: the CSV has no route here: skipped and counted" "$(json '.no_route.by_extension[".csv"]')" 1
uris=$(sql "$db" "SELECT group_concat(uri, ' ') FROM (SELECT uri FROM documents ORDER BY uri);")
check_eq "stored uris: PARENT#NAME" "$uris" "mail/notes.eml mail/notes.eml#plan.md mail/notes.eml#report.pdf"
check_eq "each attachment names its parent" \
    "$(sql "$db" "SELECT count(*) FROM documents WHERE json_extract(metadata, '\$.parent') = 'mail/notes.eml';")" 2
check_eq "the e-mail itself has no parent" \
    "$(sql "$db" "SELECT count(*) FROM documents WHERE uri = 'mail/notes.eml' AND json_extract(metadata, '\$.parent') IS NULL;")" 1
check_eq "title is the decoded Subject" "$(sql "$db" "SELECT title FROM documents WHERE uri = 'mail/notes.eml';")" \
    "Engine notes — résumé"
check_eq "author, to, cc and date from the headers" \
    "$(sql "$db" "SELECT json_extract(metadata, '\$.author') || ' | ' || json_extract(metadata, '\$.to') || ' | ' ||
                  json_extract(metadata, '\$.cc') || ' | ' || json_extract(metadata, '\$.date')
                  FROM documents WHERE uri = 'mail/notes.eml';")" \
    "Ada Lovelace <ada@example.org> | Charles Babbage <charles@example.org> | Mary Somerville <mary@example.org> | 2024-03-04T05:06:07Z"
text_of() { sql "$db" "SELECT group_concat(c.text, ' ') FROM chunks c JOIN documents d ON d.id = c.doc_id
                       WHERE d.uri = '$1';" | tr '\n' ' '; }
t=$(text_of mail/notes.eml)
check_contains "the text/plain body is stored" "$t" "The engine needs new gears"
check_contains "the quoted lines are stored" "$t" "the gears are cut"
check_lacks "the HTML alternative is not stored twice" "$t" "HTML ALTERNATIVE ONLY"
check_contains "the Markdown attachment through its own route" "$(text_of mail/notes.eml#plan.md)" "dredging the inner basin"
check_contains "the PDF attachment through its own route" "$(text_of mail/notes.eml#report.pdf)" \
    "lighthouse inspection of the northern breakwater"
check_eq "the PDF attachment's media type" \
    "$(sql "$db" "SELECT media_type FROM documents WHERE uri = 'mail/notes.eml#report.pdf';")" "application/pdf"

# --- a rerun skips it all, and --prune keeps the children of an unchanged e-mail ---
run run --json --prune mail
check_eq "rerun: exit 0" "$RC" 0
check_eq "rerun: nothing stored" "$(json .documents.stored)" 0
check_eq "rerun: the e-mail skipped (its children are not parsed again)" "$(json .documents.skipped)" 1
check_eq "rerun --prune: nothing pruned" "$(json .documents.pruned)" 0
check_eq "rerun: all three still stored" "$(sql "$db" "SELECT count(*) FROM documents;")" 3

# --- a changed e-mail replaces its children; the one that left it is pruned ---
printf '# Harbour plan\n\nThe harbour plan now covers a new lighthouse.\n' >plan.md
$MAKE mail mail/notes.eml "The engine got its gears" plan.md=plan.md
run run --json --prune mail
check_eq "changed: exit 0" "$RC" 0
check_eq "changed: the e-mail and its new Markdown stored" "$(json .documents.stored)" 2
check_eq "changed: the PDF that left it pruned" "$(json .documents.pruned)" 1
check_eq "changed: no PDF child left" \
    "$(sql "$db" "SELECT count(*) FROM documents WHERE uri = 'mail/notes.eml#report.pdf';")" 0
check_contains "changed: the Markdown child replaced" "$(text_of mail/notes.eml#plan.md)" "a new lighthouse"
check_lacks "changed: its old text is gone" "$(text_of mail/notes.eml#plan.md)" "dredging"
check_eq "changed: nothing stored twice" "$(duplicate_chunks "$db")" 0
check_eq "changed: two documents" "$(sql "$db" "SELECT count(*) FROM documents;")" 2

# --- a mailbox: its messages are documents of their own ---
$MAKE mbox mail/list.mbox 3
run run --json mail
check_eq "mbox: exit 0" "$RC" 0
check_eq "mbox: the mailbox and its three messages stored" "$(json .documents.stored)" 4
check_eq "mbox: the messages name the mailbox as parent" \
    "$(sql "$db" "SELECT count(*) FROM documents WHERE json_extract(metadata, '\$.parent') = 'mail/list.mbox'
                  AND media_type = 'message/rfc822';")" 3
check_eq "mbox: a message's title" \
    "$(sql "$db" "SELECT title FROM documents WHERE uri = 'mail/list.mbox#message-2.eml';")" "Mailbox message 2"
check_contains "mbox: a message's body" "$(text_of mail/list.mbox#message-3.eml)" "message number 3 about tide tables"

# --- a deleted e-mail takes its children with it under --prune ---
rm mail/notes.eml
run run --json --prune mail
check_eq "deleted: exit 0" "$RC" 0
check_eq "deleted: the e-mail and its child pruned" "$(json .documents.pruned)" 2
check_eq "deleted: nothing of it left" "$(sql "$db" "SELECT count(*) FROM documents WHERE uri LIKE 'mail/notes.eml%';")" 0
check_eq "deleted: no orphaned chunks" "$(orphan_chunks "$db")" 0
check_eq "deleted: the mailbox stays" "$(sql "$db" "SELECT count(*) FROM documents WHERE uri LIKE 'mail/list.mbox%';")" 4

# --- prefer = html: the HTML alternative is the body, through the HTML walk ---
mkdir html
$MAKE mail html/h.eml "Gears in markup"
run --set email.prefer=html --set store.path="$T/html.db" run --json html
check_eq "prefer = html: exit 0" "$RC" 0
t=$(sql "$T/html.db" "SELECT group_concat(c.text, ' ') FROM chunks c JOIN documents d ON d.id = c.doc_id
                      WHERE d.uri = 'html/h.eml';" | tr '\n' ' ')
check_contains "prefer = html: the HTML body is stored" "$t" "HTML ALTERNATIVE ONLY"
check_lacks "prefer = html: no markup in the text" "$t" "<p>"
check_lacks "prefer = html: the text/plain alternative is not" "$t" "quoted from Charles"

# --- attachment names are made safe and unique ---
mkdir names
$MAKE mail names/m.eml "Two files, one name" "../up/x#y.md=plan.md" "../up/x#y.md=plan.md"
run run --json names
check_eq "names: exit 0" "$RC" 0
check_eq "names: no '/' or '#' from the name; a repeated name numbered" \
    "$(sql "$db" "SELECT group_concat(uri, ' ') FROM (SELECT uri FROM documents WHERE uri LIKE 'names/m.eml#%' ORDER BY uri);")" \
    "names/m.eml#_up_x_y.md names/m.eml#_up_x_y~2.md"

# --- messages inside messages, 12 deep: the one at depth 8 fails, the rest are stored ---
mkdir nest
$MAKE nest nest/n.eml 12
run run --json nest
check_eq "nested: exit 1 (a document failed)" "$RC" 1
check_eq "nested: the message and 7 levels inside it stored" "$(json .documents.stored)" 8
check_eq "nested: the eighth level fails" "$(json '.failed[0].reason')" "documents nested more than 8 deep inside each other"
check_eq "nested: the failing one is 8 deep" "$(json '.failed[0].uri' | grep -o '#' | wc -l | tr -d ' ')" 8

# --- the parser in worker processes: children cross the socket ---
mkdir iso
$MAKE mail iso/notes.eml "Isolated gears" plan.md=plan.md report.pdf=report.pdf
run --set email.isolated=true --set store.path="$T/iso.db" run --json iso
check_eq "isolated: exit 0" "$RC" 0
check_eq "isolated: the e-mail and its two attachments stored" "$(json .documents.stored)" 3
check_eq "isolated: children with their parent" \
    "$(sql "$T/iso.db" "SELECT count(*) FROM documents WHERE json_extract(metadata, '\$.parent') = 'iso/notes.eml';")" 2

# --- more attachments than max_children (1000): fails alone, bounded ---
mkdir big
$MAKE many big/many.eml 1001
$MAKE mail big/fine.eml "A fine message" plan.md=plan.md
run run --json big
check_eq "1001 attachments: exit 1 (a document failed)" "$RC" 1
check_eq "1001 attachments: the other e-mail and its child stored" "$(json .documents.stored)" 2
check_eq "1001 attachments: one failed" "$(json .documents.failed)" 1
check_contains "1001 attachments: the reason names the limit" \
    "$(jqo '.failed[] | select(.uri == "big/many.eml") | .reason')" "more than 1000 documents inside it.*max_children"
check_eq "1001 attachments: nothing of it stored" \
    "$(sql "$db" "SELECT count(*) FROM documents WHERE uri LIKE 'big/many.eml%';")" 0
budget=$(json .memory_budget_bytes)
check "1001 attachments: in flight within the memory budget" test "$(json .peak_inflight_bytes)" -le "$budget"

# ... and with the limit raised, all 1001 are documents of their own
run --set sluice.max_children=2000 run --json big
check_eq "max_children = 2000: exit 0" "$RC" 0
check_eq "max_children = 2000: the e-mail and its 1001 notes stored" "$(json .documents.stored)" 1002
check "max_children = 2000: in flight within the memory budget" test "$(json .peak_inflight_bytes)" -le "$budget"
check_eq "max_children = 2000: uris unique" \
    "$(sql "$db" "SELECT count(DISTINCT uri) FROM documents WHERE uri LIKE 'big/many.eml#%';")" 1001

finish
