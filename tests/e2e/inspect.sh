#!/usr/bin/env bash
# tests/e2e/inspect.sh - `sluice inspect FILE` and `sluice check --plugin
# X.so --input FILE` (issue 16): one document through its route, each
# stage's output shown (elements with kind, level, line; chunks with their
# heading path; vectors' dimension and norm; metadata; time), nothing
# stored; --stage stops early; on Markdown, on a PDF made here by mutool,
# and through the example CSV plugin (examples/plugin, built in the tree).
source "$(dirname "$0")/lib.sh"

printf '# Guide\n\nIntro text here.\n\n## Install\n\nRun make install.\n' >guide.md

sl inspect --json guide.md
check_eq "inspect Markdown: exit status" "$RC" 0
check_eq "inspect: the stages in order" "$(json '[.stages[].stage] | join(" ")')" "read markdown chunker embedder"
check_eq "inspect: element kinds" "$(json '[.stages[1].elements[].kind] | join(" ")')" \
    "heading paragraph heading paragraph"
check_eq "inspect: a level-2 heading" "$(json '.stages[1].elements[2].level')" 2
check_eq "inspect: its line" "$(json '.stages[1].elements[2].line')" 5
check_eq "inspect: chunk heading path" "$(json '.stages[2].chunks[1].heading')" "Guide > Install"
check_eq "inspect: vector dimension" "$(json '.stages[3].chunks[0].dimension')" 384
check_eq "inspect: vectors are unit length" "$(json '.stages[3].chunks[0].norm | . * 1000 | round')" 1000
check_eq "inspect: the title metadata" "$(json '.stages[3].metadata.title')" "Guide"
check "inspect: stores nothing (no store created)" test ! -e .sluice/store.db

sl inspect --stage markdown guide.md
check_eq "inspect --stage: exit status" "$RC" 0
check_contains "inspect --stage markdown: the elements" "$OUT" "element 2 heading level 2 page 1 line 5: Install"
check_lacks "inspect --stage markdown: no chunker after it" "$OUT" "== chunker"
sl inspect --stage nope guide.md
check_eq "inspect --stage with no such stage: usage error" "$RC" 2
check_contains "no such stage: lists the route's stages" "$ERR" "read markdown chunker embedder"

# a PDF made by mutool, through conf/pdf.ini's route
mutool create -o report.pdf /dev/stdin <<'EOF'
%%MediaBox 0 0 400 300
%%Font F1 Helvetica
BT /F1 14 Tf 30 250 Td (Quarterly results were strong across every region) Tj ET
EOF
check "mutool made a PDF" test -s report.pdf
sl -c "$SRC/conf/pdf.ini" --set sluice.plugin_path="$BUILD/plugins" --set render.min_chars=1 inspect --json report.pdf
check_eq "inspect PDF: exit status" "$RC" 0
check_eq "inspect PDF: parsed on page 1" "$(json '.stages[] | select(.stage == "pdf") | .elements[0].page')" 1
check_contains "inspect PDF: its text" "$(json '.stages[] | select(.stage == "pdf") | .elements[0].text')" \
    "Quarterly results were strong"
check_eq "inspect PDF: page count metadata" "$(json '.stages[-1].metadata.pages')" 1
check_eq "inspect PDF: every step shown, the page stages as one" "$(json '[.stages[].stage] | join(",")')" \
    "read,pdf,render + ocr,chunker,embedder"

# the example CSV plugin: in a config, and alone with check --input
csvso=$BUILD/tests/plugins/example/example-csv.so
check "the example plugin is built" test -f "$csvso"
csv=$(ls "$SRC"/examples/plugin/data/*.csv | head -1)
sl -c "$SRC/examples/plugin/csv.ini" --set sluice.plugin_path="$(dirname "$csvso")" --stage csv inspect --json "$csv"
check_eq "inspect CSV (examples/plugin/csv.ini): exit status" "$RC" 0
check_eq "inspect CSV: tables" "$(json '[.stages[1].elements[].kind] | unique | join(" ")')" "table"
check_gt "inspect CSV: rows metadata" "$(json '.stages[1].metadata.rows')" 0

sl check --plugin "$csvso" --input "$csv" --set rows_per_table=5 --json
check_eq "check --plugin --input: exit status" "$RC" 0
check_eq "check --input: stops after the plugin" "$(json '[.stages[].stage] | join(" ")')" "read inspected"
check_gt "check --input: --set reaches the plugin (5 rows a table)" "$(json '.stages[1].elements | length')" 2

sl check --plugin "$BUILD/plugins/chunk-text.so" --input guide.md
check_eq "check --input on a chunker: exit status" "$RC" 0
check_contains "check --input on a chunker: after the default parser" "$OUT" "== markdown \(parse\)"
check_contains "check --input on a chunker: its chunks" "$OUT" "chunk 1 page 1 line 5 \[Guide > Install\]"
# the route that owns FILE's type in the built-in config: a CSV goes
# through [csv] (parse-csv), then the chunker being checked
sl check --plugin "$BUILD/plugins/chunk-text.so" --input "$csv" --json
check_eq "check --input on a chunker with a CSV: the built-in csv route's parser first" \
    "$(json '[.stages[].stage] | join(" ")')" "read csv inspected"

# small truths: a missing required option is a FAIL row and says how to set it
sl check --plugin "$BUILD/plugins/sink-sqlite.so"
check_eq "check --plugin without a required option: exit status" "$RC" 2
check_contains "missing option: a FAIL row" "$OUT" "FAIL  options: .*path: required by plugin sink-sqlite"
check_contains "missing option: suggests --set" "$ERR" "--set sink-sqlite\.path=VALUE"

# small truths: a parser's unknown-key error lists only the settings that
# apply to it (no rpm, fallback or summaries); a plugin found in two
# folders is named with the one that wins
sl --set markdown.rpmx=3 inspect guide.md
check_eq "unknown key: a config error" "$RC" 2
check_contains "unknown key: the parser's own settings listed" "$ERR" "known: .*max_concurrency, isolated"
check_lacks "unknown key: no io-only settings for a parser" "$ERR" "fallback"
check_lacks "unknown key: no llm-only settings for a parser" "$ERR" "summaries"
mkdir dup
cp "$BUILD/plugins/parse-markdown.so" dup/
sl --set sluice.plugin_path="$T/dup" inspect --stage markdown guide.md
check_eq "plugin in two folders: still runs" "$RC" 0
check_contains "plugin in two folders: says which wins" "$ERR" \
    "plugin 'parse-markdown' is in two folders: .* is used, .* is not"

finish
