#!/usr/bin/env bash
# html_matches_pandoc.sh - parse-html reads pandoc's HTML of every Markdown
# file in examples/corpus as pandoc itself reads the Markdown:
#   - text: the elements' text against `pandoc -t plain` of the source, a
#     character error rate under 1% (cer, whitespace and table rules aside);
#   - headings: the heading paths ("A > B > C") equal the source's, from
#     pandoc's JSON of the Markdown;
#   - tables: every Markdown table comes back as a table element with its
#     header row first and its cells joined by " | ";
#   - metadata: the title from <title>, lines that point at the element.
# Fixtures are made here, at test time, by pandoc.
source "$(dirname "$0")/../../e2e/lib.sh"
for tool in pandoc "$DUMP" "$CER"; do
    command -v "$tool" >/dev/null || { echo "FAIL: $tool missing (scripts/deps.sh installs pandoc)" >&2; exit 1; }
done

# The plain text of pandoc's inlines, for heading paths.
JQ_TXT='def txt: if type == "array" then map(txt) | join("")
  elif .t == "Str" then .c elif .t == "Space" or .t == "SoftBreak" then " "
  elif .t == "Code" then .c[1]
  elif .t == "Quoted" then (if .c[0].t == "DoubleQuote" then "\u201c" + (.c[1] | txt) + "\u201d"
                            else "\u2018" + (.c[1] | txt) + "\u2019" end)
  elif .t == "Link" or .t == "Span" or .t == "Image" then .c[1] | txt
  elif .t == "Emph" or .t == "Strong" or .t == "Strikeout" or .t == "SmallCaps" then .c | txt
  else "" end;'
# Heading paths from a stream of {level, text}.
JQ_PATHS='reduce .[] as $h ({stack: [], out: []};
    .stack = (.stack[0:($h.level - 1)] + [range(0; [($h.level - 1 - (.stack | length)), 0] | max) | ""]
              + [$h.text])
    | .out += [.stack | map(select(. != "")) | join(" > ")]) | .out[]'

n=0
for md in "$SRC"/examples/corpus/*.md; do
    name=$(basename "$md" .md)
    pandoc -s --metadata pagetitle="Page $name" "$md" -o "$name.html"
    pandoc -t plain --columns=100000 "$md" >"$name.ref"
    "$DUMP" --text parse-html text/html "$name.html" >"$name.hyp"
    "$DUMP" parse-html text/html "$name.html" >"$name.json"
    cer=$("$CER" "$name.ref" "$name.hyp")
    rate=$(sed 's/^cer=\([0-9.]*\).*/\1/' <<<"$cer")
    check "$name: character error rate under 1% ($cer)" awk -v r="$rate" 'BEGIN { exit !(r < 0.01) }'

    want=$(pandoc -t json "$md" | jq -r "$JQ_TXT"' [.blocks[] | select(.t == "Header") | {level: .c[0], text: (.c[2] | txt)}] | '"$JQ_PATHS")
    got=$(jq -rs '[.[] | select(.type == "heading") | {level, text}] | '"$JQ_PATHS" "$name.json")
    check_eq "$name: heading paths" "$got" "$want"
    check_gt "$name: has headings" "$(grep -c . <<<"$want")" 0

    check_eq "$name: title from <title>" "$(jq -rs '.[0].meta.title' "$name.json")" "Page $name"
    # each heading's line is the line its <hN> starts on
    while IFS=$'\t' read -r line text; do
        check_contains "$name: heading '$text' is on line $line" "$(sed -n "${line}p" "$name.html")" "<h[1-6]"
    done < <(jq -r 'select(.type == "heading") | "\(.line)\t\(.text)"' "$name.json")

    # tables: the source's pipe tables, cells trimmed, inline code marks dropped
    awk '/^\|/ { if ($0 ~ /^\|[-:| ]+\|?[ \t]*$/) next;
                 line = $0; gsub(/`/, "", line); gsub(/\.\.\./, "\342\200\246", line); # pandoc is smart about "..."
                 sub(/^\|/, "", line); sub(/\|[ \t]*$/, "", line);
                 k = split(line, c, "|"); row = "";
                 for (i = 1; i <= k; i++) { gsub(/^[ \t]+|[ \t]+$/, "", c[i]); row = row (i > 1 ? " | " : "") c[i] }
                 t = t (t == "" ? "" : "\n") row; next }
         t != "" { print t; print "\036"; t = "" }
         END { if (t != "") { print t; print "\036" } }' "$md" >"$name.tables"
    while IFS= read -r -d $'\036' table; do
        table=${table#$'\n'}
        table=${table%$'\n'}
        [[ -n $table ]] || continue
        n=$((n + 1))
        found=$(jq -r --arg t "$table" 'select(.type == "table" and .text == $t) | .type' "$name.json")
        check_eq "$name: table with header '$(head -1 <<<"$table")' recovered cell for cell" "$found" table
    done <"$name.tables"
done
check_gt "tables compared" "$n" 3

# The measure can fail: two different pages are far apart.
cer=$("$CER" "$T/install.ref" "$T/tuning.hyp")
check "cer tells different texts apart ($cer)" awk -v r="$(sed 's/^cer=\([0-9.]*\).*/\1/' <<<"$cer")" 'BEGIN { exit !(r > 0.3) }'

# Code blocks keep their language (pandoc writes class="sourceCode toml").
check_gt "code blocks with a lang" "$(jq -r 'select(.type == "code" and .lang != null) | .lang' ./*.json | grep -c .)" 0
finish
