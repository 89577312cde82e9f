#!/usr/bin/env bash
# tests/e2e/log_json.sh - `--log-format json`: every line sluice writes on
# stderr is one JSON object with time (RFC 3339, UTC), level, stage,
# document and message, parsed here by jq line by line. A document that
# fails is logged with its uri in "document" and its stage in "stage";
# errors before and after a run (a bad setting) are JSON too; the text
# format is unchanged without the option.
source "$(dirname "$0")/lib.sh"

mkdir docs
cp "$SRC"/examples/corpus/*.md docs/
: >docs/empty.md
n=$(ls docs | wc -l)

sl -vv --log-format json run --json docs
check_eq "run: exit 1 (one empty document)" "$RC" 1
check_eq "run: the report on stdout is still JSON" "$(json .documents.failed)" 1
check_gt "run -vv: stderr has lines" "$(grep -c . <<<"$ERR")" "$n"
# each line alone: a line that is not one JSON object fails here
bad=0
while IFS= read -r line; do
    jq -e 'type == "object" and (keys == ["document", "level", "message", "stage", "time"])
           and (.time | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z$"))
           and (.level | IN("error", "warning", "info", "debug"))
           and (.message | type == "string")
           and (.stage == null or (.stage | type == "string"))
           and (.document == null or (.document | type == "string"))' <<<"$line" >/dev/null ||
        { bad=$((bad + 1)); echo "not a log object: $line" >&2; }
done <<<"$ERR"
check_eq "run -vv: every stderr line is a log object with the five fields" "$bad" 0
check_eq "the failed document is logged with its uri and stage" \
    "$(jq -r 'select(.document == "docs/empty.md" and .level == "info" and (.message | startswith("failed"))) | .stage' <<<"$ERR")" \
    markdown
check_gt "state changes are logged per document (debug)" \
    "$(jq -r 'select(.level == "debug" and .document != null) | .document' <<<"$ERR" | sort -u | wc -l)" "$((n - 1))"

# a configuration error, as JSON
sl --log-format json --set sluice.threads=-5 run docs
check_eq "bad setting: exit 2" "$RC" 2
check_eq "bad setting: one JSON error line" "$(jq -r 'select(.level == "error") | .level' <<<"$ERR")" error
check_contains "bad setting: it names the key" "$(jq -r .message <<<"$ERR")" threads

# --log-format=json form, and an unknown format
sl --log-format=json failed
check_eq "--log-format=json: failed works" "$RC" 0
sl --log-format xml failed
check_eq "--log-format xml: usage error" "$RC" 2
check_contains "--log-format xml: said" "$ERR" "not text or json"

# without the option, text as before
sl -v run docs
check_contains "text format: the sluice: prefix" "$ERR" '^sluice: info: markdown: docs/empty\.md: failed'
check_lacks "text format: no JSON" "$ERR" '"level"'

finish
