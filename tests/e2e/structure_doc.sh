# tests/e2e/structure_doc.sh - the Markdown the structure tests ingest
# (sourced): a section with a table larger than a chunk and one with a code
# block, so chunks of every kind reach the store.
# shellcheck shell=bash

# write_structure_doc FILE: writes it.
write_structure_doc() {
    {
        printf '# Guide\n\nThis guide installs the tool.\n\n## Install\n\nPick the package for your system.\n\n'
        printf '| Name | Size | Notes |\n| --- | --- | --- |\n'
        for i in $(seq -w 0 59); do printf '| pkg-%s | %s KB | note %s |\n' "$i" "$((10#$i * 7))" "$i"; done
        printf '\n## Build\n\n```c\n'
        for i in $(seq 1 8); do printf 'int step_%d(void) { return %d; }\n' "$i" "$i"; done
        printf '```\n'
    } >"$1"
}

# check_structure_hits: $OUT holds `query -k 100 --json`; checks what the
# chunks of write_structure_doc record.
check_structure_hits() {
    check_gt "query: table chunks" "$(json '[hits[] | select(.kinds | index("table"))] | length')" 2
    check_eq "query: every table chunk opens its rows with the header" \
        "$(json '[hits[] | select(.kinds | index("table")) | select(.text | contains("Name | Size | Notes") | not)] | length')" 0
    check_eq "query: every table chunk is under Guide > Install" \
        "$(json '[hits[] | select(.kinds | index("table")) | .heading_path | join(" > ")] | unique | join(";")')" \
        "Guide > Install"
    check_eq "query: table rows are never cut (each line a whole row)" \
        "$(json '[hits[] | select(.kinds | index("table")) | .text | split("\n")[] | select(startswith("pkg-")) |
                  select(test("^pkg-[0-9]{2} \\| [0-9]+ KB \\| note [0-9]{2}$") | not)] | length')" 0
    check_eq "query: every row once across the table chunks" \
        "$(json '[hits[] | select(.kinds | index("table")) | .text | split("\n")[] | select(startswith("pkg-"))] | unique | length')" 60
    check_eq "query: the code chunk's kinds" "$(json '[hits[] | select(.text | contains("step_1")) | .kinds | join(",")] | first')" "heading,code"
    check_eq "query: the code chunk's heading path" \
        "$(json '[hits[] | select(.text | contains("step_1")) | .heading_path] | first | join(" > ")')" "Guide > Build"
    check_eq "query: the first chunk holds a heading and paragraphs" \
        "$(json '[hits[] | select(.uri == "docs/guide.md" and .chunk == 0) | .kinds | join(",")] | first')" "heading,paragraph"
    check_eq "query: page of every chunk" "$(json '[hits[] | .page] | unique | join(",")')" 1
    check_eq "query: no region without layout" "$(json '[hits[] | select(.region != null)] | length')" 0
}
