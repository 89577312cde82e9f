#!/usr/bin/env bash
# csv_json_records.sh - parse-csv and parse-json, one file at a time through
# dump_elements (the plugin loaded and run through its descriptor):
#   CSV: RFC 4180 quoting, CRLF, a BOM, header-led row groups with line and
#   rows attributes, other delimiters, ragged rows, and every bound failing
#   with the line where it was passed;
#   JSON: JSON Lines records with their lines, text/meta/title fields, a
#   records path, key: value rendering, and malformed input failing with
#   line, column and byte.
source "$(dirname "$0")/../../e2e/lib.sh"

# dump PLUGIN MEDIA FILE [OPT=VAL]...: sets OUT to the JSON lines, RC
dump() {
    set +e
    OUT=$("$DUMP" "$@")
    RC=$?
    set -e
}
el() { jq -rs "$1" <<<"$OUT"; }
reason() { el '.[0].error'; }

# --- CSV ---
printf '\xef\xbb\xbfname,age,"note"\r\nann,31,"likes ""quotes"", commas\r\nand newlines"\r\nbob,40,\r\n\r\ncy,5,x\r\n' >a.csv
dump parse-csv text/csv a.csv rows_per_table=2
check_eq "csv: parsed" "$RC" 0
check_eq "csv: two tables, header first in each" "$(el '[.[1:][] | .text] | join("\n--\n")')" \
    "$(printf 'name | age | note\nann | 31 | likes "quotes", commas and newlines\nbob | 40 | \n--\nname | age | note\ncy | 5 | x')"
check_eq "csv: lines of the first data rows" "$(el '[.[1:][] | .line] | join(",")')" "2,6"
check_eq "csv: metadata" "$(el '.[0].meta | "\(.columns) / \(.rows)"')" "name | age | note / 3"

printf 'a;b\n1;2\n' >semi.csv
dump parse-csv text/csv semi.csv delimiter=';'
check_eq "csv: delimiter option" "$(el '.[1].text')" "$(printf 'a | b\n1 | 2')"
printf 'a\tb\n1\t2\n' >t.tsv
dump parse-csv text/tab-separated-values t.tsv
check_eq "tsv: tab by media type" "$(el '.[1].text')" "$(printf 'a | b\n1 | 2')"
printf 'a,b\n1,2\n' >nohead.csv
dump parse-csv text/csv nohead.csv header=false
check_eq "csv: no header row" "$(el '.[1].text')" "$(printf 'a | b\n1 | 2')"

printf 'a,b\n1,2\n3\n' >ragged.csv
dump parse-csv text/csv ragged.csv
check_eq "csv: ragged fails" "$(reason)" "the record at line 3 has 1 fields, the first has 2 (set ragged = pad to keep it)"
dump parse-csv text/csv ragged.csv ragged=pad
check_eq "csv: ragged padded" "$(el '.[1].text')" "$(printf 'a | b\n1 | 2\n3 | ')"
printf 'a,b\n1,"two\n3,4\n' >open.csv
dump parse-csv text/csv open.csv
check_eq "csv: unterminated quote" "$(reason)" "a quoted field opened at line 2 is never closed"
printf 'a,b\n1,"x"y\n' >after.csv
dump parse-csv text/csv after.csv
check_contains "csv: text after a closing quote" "$(reason)" "^text after a closing quote at line 2, byte 9"
awk 'BEGIN { for (i = 0; i < 1001; i++) printf "c%d,", i; print "end" }' >wide.csv
dump parse-csv text/csv wide.csv
check_eq "csv: max_columns" "$(reason)" "more than 1000 fields in the record at line 1"
{ echo 'a,b'; printf '1,"'; head -c 2000000 /dev/zero | tr '\0' x; printf '"\n'; } >big.csv
dump parse-csv text/csv big.csv
check_eq "csv: max_field" "$(reason)" "a field longer than 1048576 bytes at line 2"
seq 1 20 | sed 's/$/,x/' >many.csv
dump parse-csv text/csv many.csv max_records=10
check_eq "csv: max_records" "$(reason)" "more than 10 records (at line 11)"
printf 'a,b\n\xff,1\n' >bad.csv
dump parse-csv text/csv bad.csv
check_eq "csv: invalid UTF-8" "$(reason)" "invalid UTF-8 at byte 4 (line 2)"
head -c 1000 /dev/urandom | tr -d '\0' >noise.csv
printf '\0' >>noise.csv
dump parse-csv text/csv noise.csv
check_eq "csv: binary refused" "$RC" 3

# --- JSON Lines ---
cat >t.jsonl <<'JSON'
{"id": 1, "title": "First", "body": "Hello there", "user": {"name": "Ada"}, "tags": ["a", "b"], "none": null}

{"id": 2, "title": "Second", "body": "More text"}
JSON
dump parse-json application/x-ndjson t.jsonl
check_eq "jsonl: key: value lines" "$(el '.[1].text')" "$(printf 'id: 1\ntitle: First\nbody: Hello there\nuser.name: Ada\ntags: a, b')"
check_eq "jsonl: lines of records" "$(el '[.[1:][] | .line] | join(",")')" "1,3"
check_eq "jsonl: records counted" "$(el '.[0].meta.records')" 2
dump parse-json application/x-ndjson t.jsonl text_fields=body title_field=title
check_eq "jsonl: title headings and text fields" "$(el '[.[1:][] | "\(.type):\(.text)"] | join(";")')" \
    "heading:First;paragraph:Hello there;heading:Second;paragraph:More text"
printf '{"id": 1}\n{"id": 2,}\n' >bad.jsonl
dump parse-json application/x-ndjson bad.jsonl
check_eq "jsonl: a bad line" "$(reason)" "invalid JSON at line 2, column 10 (byte 19): string or '}' expected near '}'"
printf '{"id": 1} {"id": 2}\n' >two.jsonl
dump parse-json application/x-ndjson two.jsonl
check_eq "jsonl: two values on a line" "$(reason)" "invalid JSON Lines at line 1, byte 10: more than one value on the line"
seq 1 20 | sed 's/.*/{"n": &}/' >many.jsonl
dump parse-json application/x-ndjson many.jsonl max_records=10
check_eq "jsonl: max_records" "$(reason)" "more than 10 records"

# --- JSON ---
printf '{"data": {"items": [{"t": "x", "id": 7}, {"t": "y"}]}}' >d.json
dump parse-json application/json d.json records=data.items text_fields=t
check_eq "json: records path" "$(el '[.[1:][] | .text] | join(",")')" "x,y"
printf '[{"name": "only", "author": "Ada"}]' >one.json
dump parse-json application/json one.json text_fields=name meta_fields=author title_field=name
check_eq "json: one record's fields are document metadata" "$(el '.[0].meta | "\(.title) \(.author)"')" "only Ada"
printf '{"a": [1, 2,\n  3}' >bad.json
dump parse-json application/json bad.json
check_eq "json: malformed" "$(reason)" "invalid JSON at line 2, column 4 (byte 16): ']' expected near '}'"
awk 'BEGIN { for (i = 0; i < 100000; i++) printf "["; for (i = 0; i < 100000; i++) printf "]"; print "" }' >deep.json
dump parse-json application/json deep.json
check_contains "json: deep nesting refused" "$(reason)" "maximum parsing depth"
dump parse-json application/json d.json records=nope
check_eq "json: records path absent" "$(reason)" 'no array at "nope" (records)'
finish
