#!/usr/bin/env bash
# tests/e2e/bad_input.sh - bad input fails a document, never the run. A
# folder of good files plus every kind of bad one a real tree holds: binary
# data, an empty file, invalid UTF-8, a dangling link, a link loop, a named
# pipe, a file over max_file_size, and (when not root, where permissions
# bind) an unreadable file. The run ends with status 1, stores the good
# documents (a single 50 MB line included: large is not bad), and its
# report names each failed document with a reason a person can act on.
#
# Tests run as root in CI, and chmod 000 does not stop root from reading:
# what reliably fails to open as root is a path that cannot be resolved
# (dangling link, link loop) or is not a regular file (a FIFO, which would
# also hang a reader that opens it blindly).
source "$(dirname "$0")/lib.sh"

mkdir docs
cp "$SRC"/examples/corpus/*.md docs/
ngood=$(count_files docs '*.md')

printf 'ELF\0\0\0\1binary\0payload' >docs/binary.md
: >docs/empty.md
printf '# Caf\xe9\n\nLatin-1 bytes are not UTF-8.\n' >docs/latin1.md
ln -s does-not-exist.md docs/dangling.md
ln -s loop-b.md docs/loop-a.md
ln -s loop-a.md docs/loop-b.md
mkfifo docs/pipe.md
truncate -s 70M docs/huge.md # sparse: over the 64M default max_file_size, no disk used

declare -A want=(
    [docs/binary.md]='NUL|binary'
    [docs/empty.md]='empty'
    [docs/latin1.md]='UTF-8'
    [docs/dangling.md]='No such file|dangling|does not exist|cannot resolve'
    [docs/loop-a.md]='symbolic links|loop'
    [docs/loop-b.md]='symbolic links|loop'
    [docs/pipe.md]='regular file|FIFO|pipe'
    [docs/huge.md]='max_file_size|too large|larger than|exceeds'
)
if [[ $(id -u) -ne 0 ]]; then
    printf '# Secret\n\nnot for you\n' >docs/unreadable.md
    chmod 000 docs/unreadable.md
    want[docs/unreadable.md]='permission denied'
fi

# One 50 MB line of words: no newline anywhere, must be stored in many chunks.
head -c 50000000 <(yes 'lorem ipsum dolor sit amet consectetur' | tr -d '\n') >docs/oneline.md
big=docs/oneline.md

sl run --json docs
check_eq "exit status with failed documents" "$RC" 1
check_eq "report: total" "$(json .documents.total)" "$((ngood + 1 + ${#want[@]}))"
check_eq "report: stored" "$(json .documents.stored)" "$((ngood + 1))"
check_eq "report: failed" "$(json .documents.failed)" "${#want[@]}"
check_eq "report: one entry per failed document" "$(json '.failed | length')" "${#want[@]}"
check_eq "report: every failure has a stage" "$(json '[.failed[] | select((.stage // "") == "")] | length')" 0

db=.sluice/store.db
for uri in "${!want[@]}"; do
    reason=$(jqo --arg u "$uri" '.failed[] | select(.uri == $u) | .reason')
    check_contains "reason given for $uri" "$reason" "${want[$uri]}"
    check_eq "$uri is not stored" "$(sql "$db" "SELECT count(*) FROM documents WHERE uri = '$uri';")" 0
done
for f in "$SRC"/examples/corpus/*.md; do
    uri=docs/$(basename "$f")
    check_gt "good document $uri stored with chunks" \
        "$(sql "$db" "SELECT coalesce(max(chunk_count), 0) FROM documents WHERE uri = '$uri';")" 0
done

check_eq "the 50 MB line is stored" "$(sql "$db" "SELECT bytes FROM documents WHERE uri = '$big';")" 50000000
check_gt "the 50 MB line is cut into many chunks" \
    "$(sql "$db" "SELECT chunk_count FROM documents WHERE uri = '$big';")" 10000
check_eq "the 50 MB line: chunk rows match chunk_count" "$(chunk_count_mismatches "$db")" 0
check_eq "the 50 MB line: no chunk over 4 KB" \
    "$(sql "$db" "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id
                  WHERE d.uri = '$big' AND length(c.text) > 4096;")" 0

# The table report lists them too, with the hint to run again.
sl run docs
check_eq "rerun: exit status still 1" "$RC" 1
for uri in "${!want[@]}"; do check_contains "table report names $uri" "$OUT" "$uri"; done
check_contains "table report: good documents skipped" "$OUT" "$((ngood + 1)) skipped"

# Failed documents are retried on the next run: fix one and it is stored.
printf '# Cafe\n\nNow valid UTF-8.\n' >docs/latin1.md
sl run --json docs
check_eq "after fixing one: exit status" "$RC" 1
check_eq "after fixing one: stored" "$(json .documents.stored)" 1
check_eq "after fixing one: failed" "$(json .documents.failed)" "$((${#want[@]} - 1))"
check_eq "the fixed document is stored" "$(sql "$db" "SELECT count(*) FROM documents WHERE uri = 'docs/latin1.md';")" 1

# A PATH naming one bad file directly fails the same way.
sl run --json docs/binary.md
check_eq "single bad file: exit status" "$RC" 1
check_contains "single bad file: reason" "$(json '.failed[0].reason')" "NUL|binary"

# A front matter of 200,000 keys (4.6 MB) is stored: the size is what is
# checked (metadata was a linear search per key: it took minutes, issue 17).
mkdir -p fm
awk 'BEGIN { print "---"; for (i = 0; i < 200000; i++) printf "key%d: value %d\n", i, i;
             print "---"; print "# Many keys"; print ""; print "A body after a huge front matter." }' >fm/many.md
sl run --json fm
check_eq "200,000 front matter keys: exit status" "$RC" 0
check_eq "200,000 front matter keys: stored" "$(json .documents.stored)" 1

finish
