#!/usr/bin/env bash
# abi_exports.sh - the ABI is what the SDK headers declare, and nothing else.
#
#   abi_exports.sh exactly   CC NM SDK_INCLUDE_DIR libsluice.so
#   abi_exports.sh includes  CC NM SDK_INCLUDE_DIR EXECUTABLE...
#
# Lists the functions declared in SDK_INCLUDE_DIR/sluice/*.h (the headers run
# through the C preprocessor CC, so macros and conditionals count as the
# compiler sees them) and the symbols `NM -D --defined-only` finds in the
# binary. "exactly": libsluice.so must export those functions and nothing
# more (core/CMakeLists.txt builds it with hidden symbols; SL_EXPORT marks
# the SDK). "includes": each executable linking the core's objects must
# export at least those functions, or the plugins it loads would call the
# second copy of the core in libsluice.so instead of its own. Prints the
# difference and fails on any.
set -euo pipefail
[[ ($# -eq 5 && $1 == exactly) || ($# -ge 5 && $1 == includes) ]] || {
    echo "usage: $0 exactly CC NM SDK_INCLUDE_DIR LIBRARY | includes CC NM SDK_INCLUDE_DIR EXECUTABLE..." >&2
    exit 2
}
mode=$1 cc=$2 nm=$3 inc=${4%/}
shift 4
tmp=$(mktemp -d "${SLUICE_TEST_TMP:-/tmp}/abi.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Every header, whether sluice.h includes it or not.
shopt -s nullglob
headers=("$inc"/sluice/*.h)
[[ ${#headers[@]} -gt 0 ]] || {
    echo "no headers in $inc/sluice" >&2
    exit 1
}
for h in "${headers[@]}"; do printf '#include <sluice/%s>\n' "${h##*/}"; done >"$tmp/all.c"
"$cc" -E -I"$inc" "$tmp/all.c" >"$tmp/all.i"

# The text that came from the SDK's headers (line markers say which file),
# split into top-level declarations: a function declared there, static and
# inline ones and typedefs (function pointer fields included) left out.
# Prints "name exported" or "name hidden" (declared without SL_EXPORT, which
# the preprocessor has turned into visibility("default")).
awk -v dir="$inc/sluice/" '
    /^# [0-9]+ "/ {
        file = $3; gsub(/"/, "", file)
        insdk = index(file, dir) == 1
        next
    }
    /^#/ { next }
    insdk { text = text " " $0 }
    END {
        depth = 0; stmt = ""; body = 0
        n = length(text)
        for (i = 1; i <= n; i++) {
            c = substr(text, i, 1)
            if (c == "{") {
                if (depth == 0 && stmt ~ /\)[ \t]*$/) body = 1 # an inline definition
                depth++
            } else if (c == "}") {
                depth--
                if (depth == 0 && body) { stmt = ""; body = 0; continue }
            }
            if (c == ";" && depth == 0) { emit(stmt); stmt = ""; continue }
            if (depth == 0 || !body) stmt = stmt c
        }
    }
    function emit(s,    vis, name, rest, k, p, q) {
        if (s ~ /^[ \t]*(typedef|static|extern[ \t]+inline|inline)[ \t(]/) return
        vis = s ~ /visibility[ \t]*\([ \t]*"default"[ \t]*\)/
        # Drop __attribute__((...)) and __asm__(...): what is left of the
        # first "(" is then the declarator name.
        while (match(s, /__(attribute|asm)__[ \t]*\(/)) {
            p = RSTART + RLENGTH - 1; q = 1
            for (k = p + 1; k <= length(s) && q > 0; k++) {
                if (substr(s, k, 1) == "(") q++
                else if (substr(s, k, 1) == ")") q--
            }
            s = substr(s, 1, RSTART - 1) " " substr(s, k)
        }
        # "name(" declares a function; "(*name)" or no "(" at all, a variable.
        if (!match(s, /[A-Za-z_][A-Za-z0-9_]*[ \t]*\([ \t]*[^ \t*]/)) return
        name = substr(s, RSTART, RLENGTH); sub(/[ \t]*\(.*$/, "", name)
        print name, (vis ? "exported" : "hidden")
    }
' "$tmp/all.i" | sort -u >"$tmp/declared"

cut -d' ' -f1 "$tmp/declared" | sort -u >"$tmp/sdk"
nsdk=$(wc -l <"$tmp/sdk")
echo "$nsdk functions declared in ${#headers[@]} headers under $inc/sluice"
[[ $nsdk -gt 0 ]] || {
    echo "FAIL: found no function declarations in the SDK headers" >&2
    exit 1
}

fail=0
if grep -q ' hidden$' "$tmp/declared"; then
    echo "FAIL: declared in the SDK headers without SL_EXPORT:"
    awk '$2 == "hidden" { print "  " $1 }' "$tmp/declared"
    fail=1
fi
for bin in "$@"; do
    "$nm" -D --defined-only "$bin" | awk 'NF >= 3 { sub(/@.*/, "", $3); print $3 }' | sort -u >"$tmp/exported"
    echo "$(wc -l <"$tmp/exported") symbols exported by $bin"
    bad=0
    comm -23 "$tmp/sdk" "$tmp/exported" >"$tmp/missing"
    if [[ -s $tmp/missing ]]; then
        echo "FAIL: declared in the SDK headers but not exported by $bin:"
        sed 's/^/  /' "$tmp/missing"
        bad=1
    fi
    if [[ $mode == exactly ]]; then
        comm -13 "$tmp/sdk" "$tmp/exported" >"$tmp/extra"
        if [[ -s $tmp/extra ]]; then
            echo "FAIL: exported by $bin but not declared in the SDK headers (internal: give it hidden visibility):"
            sed 's/^/  /' "$tmp/extra"
            bad=1
        fi
        [[ $bad -eq 1 ]] || echo "ok: $bin exports exactly the $nsdk SDK functions"
    else
        [[ $bad -eq 1 ]] || echo "ok: $bin exports all $nsdk SDK functions"
    fi
    [[ $bad -eq 0 ]] || fail=1
done
exit $fail
