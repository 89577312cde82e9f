#!/usr/bin/env bash
# tests/e2e/bad_text.sh - text a plugin gives the core must be UTF-8. A
# careless parser (tests/core/plugins/test_badtext.c) copies each line's
# bytes into a paragraph and ignores what sl_doc_add_element answers: a
# document with Latin-1 bytes still fails, with the element and the byte
# offset named, instead of being stored with bytes that `query --json`
# cannot print; UTF-8 documents beside it are stored; a bad title (metadata)
# is caught the same way. An LLM plugin's answer is checked where it is
# given (sl_completion_set): a Latin-1 summary fails its document in the
# summarizer stage, naming the plugin and the byte, not later at [store].
source "$(dirname "$0")/lib.sh"

mkdir -p docs
printf 'A first line in UTF-8: caf\xc3\xa9.\nA second line.\n' >docs/good.txt
printf 'Fine first line.\nSecond line: caf\xe9 in Latin-1.\n' >docs/latin1.txt
cat >bad.ini <<INI
[sluice]
plugin_path = $BUILD/tests/plugins
include = *.txt
[route.text]
media = text/plain
stages = parser chunker embedder
sink = store
[parser]
plugin = test-badtext
[chunker]
plugin = chunk-text
[embedder]
plugin = embed-hash
dimension = 64
[store]
plugin = sink-sqlite
path = store.db
INI

sl -c bad.ini run --json docs
check_eq "a run with one bad document exits 1" "$RC" 1
check_eq "the UTF-8 document is stored" "$(json .documents.stored)" 1
check_eq "the Latin-1 document fails" "$(json .documents.failed)" 1
reason=$(jqo '.failed[] | select(.uri == "docs/latin1.txt") | .reason')
echo "reason: $reason"
check_contains "the reason names the element and its kind" "$reason" "element 1 \\(paragraph\\)"
check_contains "the reason gives the byte offset" "$reason" "not valid UTF-8 at byte 16"
check_contains "the reason says what the rule is" "$reason" "must be UTF-8"
check_eq "nothing of the bad document is stored" \
    "$(sql store.db "SELECT count(*) FROM documents WHERE uri = 'docs/latin1.txt';")" 0

# Metadata: a title with a bad byte in an otherwise valid document.
rm -f store.db
printf 'Titre \xe0 la Latin-1\n' >docs/latin1.txt
sl -c bad.ini --set parser.title=true run --json docs
check_eq "bad title: exits 1" "$RC" 1
reason=$(jqo '.failed[] | select(.uri == "docs/latin1.txt") | .reason')
echo "reason: $reason"
check_contains "a bad metadata value is named" "$reason" "metadata value: not valid UTF-8 at byte 6"

# Fixed, the document is stored and query --json prints its text.
printf 'Now valid: caf\xc3\xa9.\n' >docs/latin1.txt
sl_ok -c bad.ini --set parser.title=true run --json docs
check_eq "the fixed document is stored" "$(sql store.db "SELECT count(*) FROM documents WHERE uri = 'docs/latin1.txt';")" 1
sl_ok -c bad.ini query --json -k 5 "valid cafe"
check_contains "query --json carries the text" "$OUT" "Now valid"

# An LLM that answers in Latin-1 and calls the refusal "out of memory".
rm -f store.db
cat >llm.ini <<INI
[sluice]
plugin_path = $BUILD/tests/plugins
include = *.txt
[route.text]
media = text/plain
stages = parser chunker summarizer embedder
sink = store
[parser]
plugin = test-badtext
[chunker]
plugin = chunk-text
[summarizer]
plugin = test-badtext-llm
[embedder]
plugin = embed-hash
dimension = 64
[store]
plugin = sink-sqlite
path = store.db
INI
rm docs/latin1.txt
sl -c llm.ini run --json docs
check_eq "a Latin-1 summary: exits 1" "$RC" 1
check_eq "a Latin-1 summary: the document fails" "$(json .documents.failed)" 1
check_eq "a Latin-1 summary fails in the summarizer stage, not at the sink" \
    "$(jqo '.failed[] | select(.uri == "docs/good.txt") | .stage')" summarizer
reason=$(jqo '.failed[] | select(.uri == "docs/good.txt") | .reason')
echo "reason: $reason"
check_contains "the reason names the stage, the plugin and the byte" "$reason" \
    "\\[summarizer\\] test-badtext-llm answered text that is not valid UTF-8 at byte 1"
check_lacks "the plugin's own 'out of memory' is not the reason" "$reason" "out of memory"
sl -c bad.ini check --plugin "$BUILD/tests/plugins/test-badtext-llm.so"
check_contains "check --plugin: a FAIL row with the byte" "$OUT$ERR" "complete: the answer is not valid UTF-8 at byte 1"
finish
