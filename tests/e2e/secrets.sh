#!/usr/bin/env bash
# tests/e2e/secrets.sh - a secret option's value never leaves the process.
# The test embedder test-embed (tests/core/plugins/test_embed.c) declares
# api_key as SL_OPT_SECRET and is as careless as a plugin can be: it logs
# the key in init, and puts it in the message of every failure (retryable
# and bad input). The value comes from ${SLUICE_TEST_SECRET} in the INI, or
# from --set; either way stdout, stderr (at -vv) and the --json report must
# never contain it, and must show "***" where it would have been.
source "$(dirname "$0")/lib.sh"

secret="sk-e2e-$$-$RANDOM-do-not-print-me"
export SLUICE_TEST_SECRET=$secret

# The plugin is built with the tests, outside the regular plugins folder.
use_test_plugins test-embed

sl plugins --json
check_eq "plugins --json: exit status" "$RC" 0
check_eq "test-embed's api_key is declared secret" \
    "$(json 'plugins[] | select(.name == "test-embed") | .options[] | select(.name == "api_key") | .secret')" true
check_lacks "plugins --json: no secret" "$OUT$ERR" "$secret"

# The first embed call fails as retryable (the core retries it), and every
# batch holding "idempotent" (in faq.txt) fails as bad input: both messages
# carry the key.
cat >secret.ini <<'EOF'
[sluice]
threads = 2
retry_base = 10ms

[route.text]
media = text/markdown text/plain
stages = markdown chunker secret
sink = store

[secret]
plugin = test-embed
api_key = ${SLUICE_TEST_SECRET}
fail_first = 1
bad_text = idempotent

[markdown]
plugin = parse-markdown

[chunker]
plugin = chunk-text

[store]
plugin = sink-sqlite
path = ${CWD}/.sluice/store.db
EOF
check_lacks "the INI itself holds no secret" "$(cat secret.ini)" "$secret"

mkdir docs
cp "$SRC"/examples/corpus/overview.md "$SRC"/examples/corpus/faq.txt docs/

# expect_scrubbed DESCRIPTION: the last run's output never shows the secret,
# and shows *** in its place.
expect_scrubbed() {
    check_lacks "$1: stdout" "$OUT" "$secret"
    check_lacks "$1: stderr" "$ERR" "$secret"
    check_contains "$1: *** where the secret was" "$OUT$ERR" '\*\*\*'
}

sl -vv -c secret.ini run --json docs
check_eq "run with a document the plugin refuses: exit status" "$RC" 1
check_eq "run: stdout is a JSON report" "$(json '.documents.failed > 0')" true
expect_scrubbed "run --json -vv"
check_contains "run: the failure reason shows *** for the key" "$(json '[.failed[].reason] | join("\n")')" \
    'key \*\*\*'
check_contains "run: the key logged in init shows as ***" "$ERR" 'key \*\*\*'

rm -rf .sluice
sl -vv -c secret.ini run docs
check_eq "run (table report): exit status" "$RC" 1
expect_scrubbed "run (table report) -vv"

# An unset variable for the secret is an error naming the variable only
# (interpolation happens when the file is read, before --set applies).
unset SLUICE_TEST_SECRET
sl -c secret.ini check
check_eq "unset \${SLUICE_TEST_SECRET}: exit status" "$RC" 2
check_contains "unset \${SLUICE_TEST_SECRET}: variable named" "$ERR" "SLUICE_TEST_SECRET"

# The same value given on the command line instead.
grep -v '^api_key' secret.ini >set.ini
rm -rf .sluice
sl -vv -c set.ini --set "secret.api_key=$secret" run --json docs
check_eq "run with --set secret.api_key: exit status" "$RC" 1
expect_scrubbed "run with --set secret.api_key"

sl -vv -c set.ini --set "secret.api_key=$secret" check
check_eq "check with --set secret.api_key: exit status" "$RC" 0
expect_scrubbed "check -vv with --set secret.api_key"

# A configuration error in the secret's section must not echo the value.
sl -vv -c set.ini --set "secret.api_key=$secret" --set "secret.api_kee=$secret" check
check_eq "typo next to a secret: exit status" "$RC" 2
check_contains "typo next to a secret: the typo is named" "$ERR" "api_kee"
check_lacks "typo next to a secret: stderr" "$ERR" "$secret"
check_lacks "typo next to a secret: stdout" "$OUT" "$secret"


# The same with --log-format json: every stderr line one JSON object, and
# the secret in none of them.
rm -rf .sluice
sl -vv --log-format json -c set.ini --set "secret.api_key=$secret" run --json docs
check_eq "run --log-format json: exit status" "$RC" 1
expect_scrubbed "run --log-format json -vv"
check_eq "run --log-format json: every stderr line is a JSON object" \
    "$(jq -Rc 'fromjson? | objects | 1' <<<"$ERR" | wc -l)" "$(grep -c . <<<"$ERR")"
check_contains "run --log-format json: the key logged in init shows as *** in a message" \
    "$(jq -r '.message' <<<"$ERR")" 'key \*\*\*'

finish
