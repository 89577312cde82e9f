#!/usr/bin/env bash
# html_hostile_input.sh - hostile HTML through `sluice run` with the default
# config, next to a good page: each hostile file is stored or fails alone
# with its reason, the run never dies, the good page is stored, and the
# run's peak memory stays bounded (the report's peak RSS).
#   deep10k.html   10,000 nested divs: parsed (no stack blown), text kept
#   deep100k.html  100,000 nested divs: refused before parsing, with where
#   attr.html      a 20 MB attribute: parsed, the attribute dropped
#   garbage.html   random bytes: refused (binary data)
#   latin1.html    declared ISO-8859-1: stored as UTF-8
#   tagsoup.html   unclosed tags, stray end tags, a </table> with no table
source "$(dirname "$0")/../../e2e/lib.sh"

mkdir docs
pandoc -s --metadata pagetitle=good "$SRC/examples/corpus/install.md" -o docs/good.html
awk 'BEGIN { for (i = 0; i < 10000; i++) printf "<div>"; printf "bottom of the well"; for (i = 0; i < 10000; i++) printf "</div>"; print "" }' >docs/deep10k.html
awk 'BEGIN { for (i = 0; i < 100000; i++) printf "<div>"; print "too deep" }' >docs/deep100k.html
{
    printf '<p title="'
    head -c 20000000 /dev/zero | tr '\0' 'a'
    printf '">after the attribute</p>\n'
} >docs/attr.html
head -c 300000 /dev/urandom >docs/garbage.html
printf '<html><head><meta charset="iso-8859-1"><title>caf\xe9</title></head><body><p>na\xefve r\xe9sum\xe9</p></body></html>\n' >docs/latin1.html
printf '<p>one<p>two<b><i>three</b></i></table><li>four<td>five</div></div>\n' >docs/tagsoup.html

sl run --json docs
check_eq "a run with failures exits 1" "$RC" 1
check_eq "stored" "$(json .documents.stored)" 5
check_eq "failed" "$(json .documents.failed)" 2
check_eq "deep100k's reason" "$(json '.failed[] | select(.uri | endswith("deep100k.html")) | .reason')" \
    "HTML nested deeper than 20000 elements (at byte 100000, line 1)"
check_contains "garbage's reason" "$(json '.failed[] | select(.uri | endswith("garbage.html")) | .reason')" \
    "^(binary data: NUL byte at offset [0-9]+|invalid UTF-8 at byte [0-9]+)"
rss=$(json .peak_rss_bytes)
check "peak RSS $rss under 400 MB" test "$rss" -lt 400000000

db=.sluice/store.db
q() { sql "$db" "SELECT group_concat(c.text, ' ') FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.uri LIKE '%$1'"; }
check_contains "deep10k's text" "$(q deep10k.html)" "bottom of the well"
check_contains "attr's text" "$(q attr.html)" "^after the attribute$"
check_contains "latin1 as UTF-8" "$(q latin1.html)" "naïve résumé"
check_eq "latin1's title" "$(sql "$db" "SELECT title FROM documents WHERE uri LIKE '%latin1.html'")" "café"
# as a browser reads it: <p> closes <p>, "two<b>three" is one word, a <td> outside a table is no cell
check_eq "tag soup's text" "$(q tagsoup.html | paste -sd' ')" "one  twothree  fourfive"
check_gt "the good page's chunks" "$(sql "$db" "SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE d.uri LIKE '%good.html'")" 1
finish
