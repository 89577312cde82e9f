#!/usr/bin/env bash
# tests/plugins/sink-sqlite/thread_cpu.sh - the report's CPU by thread
# (`thread_cpu` in --json, a line in the text report) names the threads
# that did the run's work, sink-sqlite's own among them, which no stage's
# busy time shows:
#   - a run with the keyword index: the loop, the pool's threads (as many
#     as [sluice] threads), the writer and the keyword thread each used
#     CPU; what they used together is about the process's CPU over the run
#     (cores_used x wall_s), never well above it;
#   - the same with keyword_index = off: no keyword thread, as none ran;
#   - the text report prints the line, most first.
source "$(dirname "$0")/../../e2e/lib.sh"

bash "$SRC/bench/gen_corpus.sh" 300 corpus 4000 5 >/dev/null

sl_ok run --json --set sluice.threads=2 --set store.path="$T/a.db" corpus
check_eq "stored" "$(json .documents.stored)" 300
check_eq "thread_cpu is a list" "$(json '.thread_cpu | type')" array
for name in loop sluice-pool sqlite-writer sqlite-keywords; do
    check "the $name thread(s) used CPU ($(json "[.thread_cpu[] | select(.name == \"$name\") | .cpu_s] | add"))" \
        test "$(json "[.thread_cpu[] | select(.name == \"$name\") | .cpu_s] | add > 0")" = true
done
check_eq "one entry a name" "$(json '[.thread_cpu[].name] | (length == (unique | length))')" true
check_eq "the pool's threads are [sluice] threads" \
    "$(json '.thread_cpu[] | select(.name == "sluice-pool") | .threads')" 2
check_eq "the loop is one thread" "$(json '.thread_cpu[] | select(.name == "loop") | .threads')" 1
check_eq "most first" "$(json '[.thread_cpu[].cpu_s] | . == (sort | reverse)')" true
threads_s=$(json '[.thread_cpu[].cpu_s] | add')
process_s=$(json '.binding.cores_used * .wall_s')
check "the threads' CPU ($threads_s s) is at most the process's over the run ($process_s s)" \
    test "$(json '([.thread_cpu[].cpu_s] | add) <= .binding.cores_used * .wall_s * 1.1 + 0.05')" = true
check "the threads' CPU ($threads_s s) is most of the process's ($process_s s)" \
    test "$(json '([.thread_cpu[].cpu_s] | add) >= .binding.cores_used * .wall_s * 0.5')" = true

sl_ok run --json --set store.path="$T/b.db" --set store.keyword_index=off corpus
check_eq "keyword_index = off: stored" "$(json .documents.stored)" 300
check_eq "keyword_index = off: no keyword thread" \
    "$(json '[.thread_cpu[] | select(.name == "sqlite-keywords")] | length')" 0
check "keyword_index = off: the writer still used CPU" \
    test "$(json '[.thread_cpu[] | select(.name == "sqlite-writer") | .cpu_s] | add > 0')" = true

rm -f "$T/a.db" "$T/a.db.keywords"
sl_ok run --set store.path="$T/a.db" corpus
check_contains "the text report has the line" "$OUT$ERR" \
    'CPU by thread, [0-9.]+ s in all: [a-z-]+( x[0-9]+)? [0-9.]+ s \([0-9]+%\)'
check_contains "the text report names the keyword thread" "$OUT$ERR" 'sqlite-keywords [0-9.]+ s'

finish
