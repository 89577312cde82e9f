#!/usr/bin/env bash
# tests/providers-e2e/binding.sh - after a run the report names what bounded
# it, from what the run measured (`binding` in --json, a line in the text
# report):
#   - one document and a slow provider (3 s an answer): its own chain of
#     steps ("chain"),
#     and the chain it reports is at least the provider's latency;
#   - many documents behind `rpm` on the summarizer: that limit ("limit"),
#     named with its section and value, with what doubling it would save
#     (24 summaries at rpm = 12: 12 go at once, the other 12 wait for the
#     minute to pass, so this part runs a little over a minute);
#   - a memory budget too small for the documents: memory_budget, with the
#     time admission waited (tests/providers-e2e/memory_budget.sh);
#   - the cores full, and not only with sluice: sluice and two busy loops
#     pinned to one CPU ("machine"), the line giving the CPU's busy share,
#     sluice's part and the others', and how long sluice's threads waited
#     for the core (cpu_wait_s), and which of its threads had the most.
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../e2e/lib.sh"
source "$HERE/fake.sh"

key="sk-binding-$$-$RANDOM"
export OPENAI_API_KEY=$key

openai_ini bind.ini

# --- one document, every answer 3 s: its chain is the run ---
start_fake slow --api-key "$key" --latency-ms 3000 --latency-dist fixed
mkdir one
printf '# Rotating keys\n\nIssue the new key, roll it out, revoke the old one.\n' >one/rotate.md
mkdir r1 && cd r1
sl -c ../bind.ini --set "summarizer.base_url=${URL[slow]}/v1" --set "embedder.base_url=${URL[slow]}/v1" \
    run --json ../one
cd "$T"
check_eq "one slow document: exit status" "$RC" 0
check_eq "one slow document: bound by its chain" "$(json .binding.kind)" chain
check "one slow document: the chain ($(json .binding.chain_s) s) is at least one answer's 3 s" \
    test "$(json '.binding.chain_s >= 3')" = true
check "one slow document: the chain is within the wall time" test "$(json '.binding.chain_s <= .wall_s')" = true
check_contains "one slow document: the line says so" "$(json .binding.line)" \
    'bound by the documents.* own steps: the longest document chain was [0-9.]+ s of [0-9.]+ s'

# --- 24 documents, instant answers, summaries at 12 a minute ---
start_fake fast --api-key "$key"
bash "$SRC/bench/gen_corpus.sh" 24 many 2000 7 >/dev/null
mkdir r2 && cd r2
sl -c ../bind.ini --set "summarizer.base_url=${URL[fast]}/v1" --set "embedder.base_url=${URL[fast]}/v1" \
    --set summarizer.rpm=12 run --json ../many
cd "$T"
check_eq "rpm = 12: exit status" "$RC" 0
check_eq "rpm = 12: stored" "$(json .documents.stored)" 24
check_eq "rpm = 12: bound by the limit" "$(json .binding.kind)" limit
check_contains "rpm = 12: the line names the section, the limit and the saving" "$(json .binding.line)" \
    'bound by \[summarizer\] rpm = 12: [0-9]+ requests waited [0-9.]+ s in all for the limit; doubling it would save up to about [0-9.]+ s'

# the text report prints the same line
mkdir r3 && cd r3
sl -c ../bind.ini --set "summarizer.base_url=${URL[slow]}/v1" --set "embedder.base_url=${URL[slow]}/v1" \
    run ../one
cd "$T"
check_contains "the text report names the bound" "$OUT$ERR" 'bound by the documents.* own steps'

# --- one CPU, shared with two busy loops: bound by the machine's CPU ---
# This shell, the loops and sluice all run on the first CPU this test may
# use (taskset): sluice sees one core, and gets only part of it.
bash "$SRC/bench/gen_corpus.sh" 400 cpu 8000 11 >/dev/null
all_cpus=$(taskset -pc $$ | sed 's/.*: *//')
cpu=$(sed 's/[,-].*//' <<<"$all_cpus")
taskset -pc "$cpu" $$ >/dev/null
burners=()
for _ in 1 2; do
    bash -c 'while :; do :; done' &
    burners+=($!)
done
mkdir r4 && cd r4
sl run --json ../cpu
cd "$T"
kill "${burners[@]}"
wait "${burners[@]}" 2>/dev/null || true
taskset -pc "$all_cpus" $$ >/dev/null
check_eq "one shared CPU: exit status" "$RC" 0
check_eq "one shared CPU: stored" "$(json .documents.stored)" 400
check_eq "one shared CPU: bound by the machine's CPU" "$(json .binding.kind)" machine
check_contains "one shared CPU: the line gives the busy share and who had it" "$(json .binding.line)" \
    "bound by the machine's CPU: its 1 core was (8[5-9]|9[0-9]|100)% busy, sluice using [0-9.]+ and other processes [0-9.]+; more cores, or less else running, would help"
check "one shared CPU: sluice had part of the core, the loops the rest" \
    test "$(json '.binding.cores_used > 0 and .binding.cores_used < 0.9')" = true
# how sluice knows it wanted more: its threads waited, ready, for the core
# at least as long as they ran (however little of it a crowded machine
# left sluice)
check "one shared CPU: sluice's threads waited for the core as long as they ran, or longer" \
    test "$(json '.binding.cpu_wait_s >= .binding.cores_used * .wall_s')" = true
check_contains "one shared CPU: the line says how long they waited" "$(json .binding.line)" \
    "sluice's threads waited [0-9.]+ s in all for a core"
check_contains "one shared CPU: the line names sluice's busiest threads" "$(json .binding.line)" \
    "sluice's CPU by thread: [a-z-]+( x[0-9]+)? [0-9]+%"

finish
