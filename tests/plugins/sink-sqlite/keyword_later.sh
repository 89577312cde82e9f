#!/usr/bin/env bash
# tests/plugins/sink-sqlite/keyword_later.sh - keyword_index = later: a run
# logs its chunks for the keyword index but runs no keyword thread and does
# not wait for the index at its end; the first keyword query brings the
# index up to date, and finds what the runs stored:
#   - a run on a new store: no keyword file after it, no keyword thread in
#     the report's CPU by thread, every chunk in the log;
#   - a keyword query then builds the file (its state at the log's head)
#     and finds a document by its own word;
#   - a second run with later adds documents: the file stays where the
#     query left it, the next query catches it up from the log and finds
#     the new ones;
#   - a run with on catches up on its own thread and ends with the file at
#     the log's head;
#   - a value that is not on, later or off is refused, naming the option.
source "$(dirname "$0")/../../e2e/lib.sh"

db=$T/s.db
kw=$db.keywords
later=(--set store.path="$db" --set store.keyword_index=later)

source "$(dirname "$0")/keywords.sh"
log_rows() { sql "$db" "SELECT count(*) FROM keyword_log WHERE NOT deleted;"; }

write_docs docs 1 40
sl_ok "${later[@]}" run --json docs
check_eq "later: stored" "$(json .documents.stored)" 40
check "later: no keyword file after the run" test ! -e "$kw"
check_eq "later: no keyword thread ran" "$(json '[.thread_cpu[] | select(.name == "sqlite-keywords")] | length')" 0
check_eq "later: the writer ran" "$(json '[.thread_cpu[] | select(.name == "sqlite-writer")] | length')" 1
chunks=$(sql "$db" "SELECT count(*) FROM chunks;")
check_eq "later: every chunk is in the keyword log" "$(log_rows)" "$chunks"

sl_ok "${later[@]}" query --mode keyword --json wordmark17
check_eq "the first keyword query finds the document by its word" \
    "$(json '[hits[] | .uri | test("n17\\.md$")] | any')" true
check "the query made the keyword file" test -e "$kw"
check_eq "the keyword file is at the log's head" "$(kw_seq)" "$(log_head)"

write_docs docs 41 50
sl_ok "${later[@]}" run --json docs
check_eq "later, again: the new documents stored" "$(json .documents.stored)" 10
check "later, again: the file stays behind the log" test "$(kw_seq)" -lt "$(log_head)"
sl_ok "${later[@]}" query --mode keyword --json wordmark47
check_eq "the next query finds a new document" "$(json '[hits[] | .uri | test("n47\\.md$")] | any')" true
check_eq "and the file is at the log's head again" "$(kw_seq)" "$(log_head)"

write_docs docs 51 55
sl_ok run --json --set store.path="$db" docs
check_eq "on: the new documents stored" "$(json .documents.stored)" 5
check_eq "on: the run ends with the file at the log's head" "$(kw_seq)" "$(log_head)"
check_eq "on: its keyword thread ran" "$(json '[.thread_cpu[] | select(.name == "sqlite-keywords")] | length')" 1

sl run --set store.path="$db" --set store.keyword_index=sometimes docs
check_eq "keyword_index = sometimes: a configuration error" "$RC" 2
check_contains "keyword_index = sometimes: named" "$ERR" "keyword_index.*'sometimes' is not on, later or off"

finish
