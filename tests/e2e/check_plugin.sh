#!/usr/bin/env bash
# tests/e2e/check_plugin.sh - `sluice check --plugin FILE.so` validates one
# plugin file the way a third-party author uses it: a plugin of this build
# passes (status 0, its name shown), and files that are not plugins are
# refused with status 2 and a message naming the file and the reason. The
# out-of-tree build of examples/plugin against an installed sluice is
# checked by .ci/run, after `cmake --install`.
source "$(dirname "$0")/lib.sh"

md=$BUILD/plugins/parse-markdown.so
check "parse-markdown.so is built" test -f "$md"

sl check --plugin "$md"
check_eq "check --plugin parse-markdown.so: exit status" "$RC" 0
check_contains "check --plugin names the plugin" "$OUT$ERR" "parse-markdown"

# Every plugin of the build passes, given a value for each required option.
# Remote providers are pointed at the fake provider (their contract check
# really calls the API), layout-torch gets a model compiled from source; the
# PostgreSQL sink needs a server, which its own tests start.
fake=$BUILD/tests/fake-provider/fake-provider
check "the fake provider is built" test -x "$fake"
"$fake" --port 0 >fake.out 2>fake.err &
fake_pid=$!
for _ in $(seq 50); do grep -q listening fake.out 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/.*127.0.0.1://p' fake.out | head -1)
check "the fake provider listens" test -n "$port"
sl plugins --json
listing=$OUT
for p in "$BUILD"/plugins/*.so; do
    name=$(basename "$p" .so)
    sets=()
    case $name in
    sink-postgres) continue ;;
    layout-torch)
        # its contract needs a real TorchScript model: made from source here
        "$BUILD/tests/torch-make-model" rects "$T/rects.pt" >/dev/null
        check "torch-make-model wrote a model" test -s "$T/rects.pt"
        sets+=(--set "model=$T/rects.pt")
        ;;
    embed-torch)
        # a tiny encoder compiled from source and a vocabulary written here
        mkdir -p "$T/embed-torch"
        "$BUILD/tests/embed-make-model" "$T/embed-torch" >/dev/null
        printf '%s\n' '[PAD]' '[UNK]' '[CLS]' '[SEP]' probe >"$T/embed-torch/vocab.txt"
        sets+=(--set "model=$T/embed-torch/sin.pt" --set "vocab=$T/embed-torch/vocab.txt")
        ;;
    llm-openai | llm-anthropic | embed-openai) sets+=(--set "base_url=http://127.0.0.1:$port/v1") ;;
    llm-ollama | embed-ollama) sets+=(--set "base_url=http://127.0.0.1:$port") ;;
    esac
    for opt in $(jq -r --arg n "$name" 'def plugins: if type == "array" then . else .plugins end;
                 plugins[] | select(.name == $n) | .options[] | select(.required) | .name' <<<"$listing"); do
        [[ " ${sets[*]} " == *" $opt="* ]] && continue # given above
        case $opt in
        dimension) sets+=(--set "dimension=384" --set "model=text-embedding-fake") ;;
        *) sets+=(--set "$opt=$T/$name-$opt") ;;
        esac
    done
    sl check --plugin "$p" "${sets[@]}"
    check_eq "check --plugin $name.so ${sets[*]}: exit status" "$RC" 0
    check_contains "check --plugin $name.so: says it passes" "$OUT" "passes"
done
kill "$fake_pid" 2>/dev/null
wait "$fake_pid" 2>/dev/null

# A required option left out is a configuration error naming the option.
sl check --plugin "$BUILD/plugins/sink-sqlite.so"
check_eq "check --plugin sink-sqlite.so without its required path: exit status" "$RC" 2
check_contains "missing required option: named" "$ERR" "path.*required|required.*path"

# Not a plugin: a shared object without the entry symbol.
lib=$(find "$BUILD" -name 'libsluice.so*' -type f -print -quit)
check "libsluice.so is built" test -n "$lib"
sl check --plugin "$lib"
check_eq "check --plugin on a library that is no plugin: exit status" "$RC" 2
check_contains "no entry symbol: message names the symbol" "$ERR" "sluice_plugin_v1"
check_contains "no entry symbol: message names the file" "$ERR" "$(basename "$lib")"

# Not a shared object at all, and a file that does not exist.
printf 'not an ELF file\n' >fake.so
sl check --plugin "$T/fake.so"
check_eq "check --plugin on a text file: exit status" "$RC" 2
check_contains "text file: message names the file" "$ERR" "fake\.so"
sl check --plugin "$T/missing.so"
check_eq "check --plugin on a missing file: exit status" "$RC" 2
check_contains "missing file: message names the file" "$ERR" "missing\.so"

# `sluice plugins` lists every plugin of the build with its role and options.
sl plugins --json
check_eq "plugins --json: exit status" "$RC" 0
for name in parse-markdown chunk-text embed-hash sink-sqlite; do
    check_eq "plugins --json lists $name" \
        "$(jqo --arg n "$name" '[plugins[] | select(.name == $n)] | length')" 1
done
sl plugins
check_eq "plugins: exit status" "$RC" 0
check_contains "plugins shows chunk-text's size option" "$OUT" "size"

finish
