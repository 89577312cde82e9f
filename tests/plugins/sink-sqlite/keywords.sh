# tests/plugins/sink-sqlite/keywords.sh - helpers of the keyword index's
# tests (sourced after tests/e2e/lib.sh, with $db the store and $kw its
# keyword file).

# write_docs DIR FIRST LAST: one document a number, each with its own word
write_docs() {
    mkdir -p "$1"
    for i in $(seq "$2" "$3"); do
        printf '# Note %d\n\nThe quartermaster counted the crates in bay %d: wordmark%d.\n' "$i" "$i" "$i" >"$1/n$i.md"
    done
}
# the keyword file's position in the store's log, and the log's head
kw_seq() { sql "$kw" "SELECT seq FROM kw_state;"; }
log_head() { sql "$db" "SELECT seq FROM sqlite_sequence WHERE name = 'keyword_log';"; }
