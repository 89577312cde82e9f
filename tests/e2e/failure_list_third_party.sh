#!/usr/bin/env bash
# tests/e2e/failure_list_third_party.sh - a third-party sink built before
# the failure list (ABI 1.2: no failures_record, failures_list, documents
# or probe) still works, and sluice says what it cannot do with it: a run
# warns that its failures are not recorded, `failed` names the sink (and
# lists it in --json), `retry` has nothing to run, `run --dry-run --prune`
# refuses with the reason, and `check --connect` counts its init.
source "$(dirname "$0")/lib.sh"

use_test_plugins test-sink-nolist

cat >old.ini <<'EOF2'
[route.text]
media = text/markdown
stages = markdown chunker
sink = store

[markdown]
plugin = parse-markdown

[chunker]
plugin = chunk-text

[store]
plugin = test-sink-nolist
EOF2
mkdir docs
printf '# Fine\n\ntext\n' >docs/fine.md
: >docs/empty.md

sl -c old.ini run --json docs
check_eq "run: exit 1 (one document failed)" "$RC" 1
check_eq "run: the other stored" "$(json .documents.stored)" 1
check_contains "run: says the failure is not recorded, naming the plugin" "$ERR" \
    'store: plugin test-sink-nolist keeps no failure list.*1 failed documents are not recorded'

sl -c old.ini failed
check_eq "failed: exit 0" "$RC" 0
check_contains "failed: names the sink and why" "$ERR" 'store: plugin test-sink-nolist keeps no failure list'
check_contains "failed: says nothing is recorded" "$OUT" 'no failed documents recorded'
sl -c old.ini failed --json
check_eq "failed --json: the sink listed without a failure list" "$(json '.sinks_without_failure_list | join(" ")')" store
check_eq "failed --json: no rows" "$(json .count)" 0

sl -c old.ini retry
check_eq "retry: exit 0" "$RC" 0
check_contains "retry: nothing to run" "$OUT" 'nothing to retry'

sl -c old.ini run --dry-run docs
check_eq "dry run without --prune: exit 0 (empty.md fails only when parsed)" "$RC" 0
check_contains "dry run: both new" "$OUT" '2 new'
sl -c old.ini run --dry-run --prune docs
check_eq "dry run --prune: exit 2" "$RC" 2
check_contains "dry run --prune: the reason" "$ERR" 'test-sink-nolist cannot list its documents'

sl -c old.ini check --connect
check_eq "check --connect: exit 0" "$RC" 0
check_contains "check --connect: the sink's init counts" "$OUT" 'store +test-sink-nolist +sink +init only .*ok \(plugin test-sink-nolist has no probe'

finish
