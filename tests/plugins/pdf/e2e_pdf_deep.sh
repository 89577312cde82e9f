#!/usr/bin/env bash
# tests/plugins/pdf/e2e_pdf_deep.sh - PDFs nested 100,000 deep do not take
# a run down (issue 17). mupdf loads an outline, and walks a page's form
# XObjects, by recursion one stack frame per level: deep-outline.pdf (an
# outline nested 100,000 deep, 13 MB) and deep-forms.pdf (form XObjects
# nested 100,000 deep, 16 MB) overflowed a pool thread's 8 MB stack, and
# the whole run died of SIGSEGV with no report and no file named.
#
# conf/pdf.ini on the pool (not isolated), over both deep files, a normal
# PDF and a Markdown file: the run ends by itself (exit 0 or 1, never a
# signal), the normal documents are stored, each deep file is stored or
# fails with a reason that names it, and the report is printed. Then the
# same run again: the same exit status and the same failures.
#
# Usage (ctest): e2e_pdf_deep.sh SLUICE SOURCE_DIR FIXTURE_DIR GEN_FIXTURES
# SLUICE_PDF_DEEP_DEPTH changes the depth (default 100000), to measure.
source "$2/tests/e2e/lib.sh"
FIXTURES=$(realpath "$3")
GEN=$(realpath "$4")
CONF=$SRC/conf/pdf.ini
DEPTH=${SLUICE_PDF_DEEP_DEPTH:-100000}
DEEP=(deep-outline.pdf deep-forms.pdf)

# The deep files are made here, at test time (about a second for both).
start=$(now_ms)
"$GEN" --deep corpus "$DEPTH"
echo "gen_fixtures --deep $DEPTH: $(($(now_ms) - start)) ms," \
    "$(stat -c %s corpus/deep-outline.pdf) + $(stat -c %s corpus/deep-forms.pdf) bytes"
cp "$FIXTURES"/text.pdf corpus/
printf '# Notes\n\nThe harbour master keeps the tide tables in a drawer by the door.\n' >corpus/notes.md

db=$T/store.db
run_pdf() { sl -c "$CONF" --set "store.path=$db" --set sluice.threads=2 "$@" run corpus; }
stored() { sql "$db" "SELECT count(*) FROM documents WHERE uri = 'corpus/$1';"; }
text_of() { sql "$db" "SELECT group_concat(c.text, ' ') FROM chunks c JOIN documents d ON d.id = c.doc_id
                       WHERE d.uri = 'corpus/$1';" | tr '\n' ' '; }
# The report's line for a failed document: "  corpus/NAME [STAGE]: REASON".
report_line() { grep -F "  corpus/$1 [" <<<"$OUT" || true; }

# --- first run: the printed report ---
run_pdf
first_rc=$RC
check "exit status 0 or 1 (got $RC): the run was not killed" test "$RC" -eq 0 -o "$RC" -eq 1
if [[ $RC -gt 1 ]]; then echo "stderr: $(tail -c 3000 <<<"$ERR")" >&2; fi
check_contains "the report is printed" "$OUT" "^documents: 4 total"
check_eq "text.pdf is stored" "$(stored text.pdf)" 1
check_contains "text.pdf: its text" "$(text_of text.pdf)" "seventeen lanterns along the northern breakwater"
check_eq "notes.md is stored" "$(stored notes.md)" 1
check_contains "notes.md: its text" "$(text_of notes.md)" "tide tables in a drawer"
first_failed=""
for f in "${DEEP[@]}"; do
    line=$(report_line "$f")
    if [[ $(stored "$f") == 1 ]]; then
        check_eq "$f: stored, so not in the report's failures" "$line" ""
    else
        check_contains "$f: not stored, so failed with a reason naming it" "$line" "corpus/$f \[pdf\]: .+"
    fi
    first_failed+="$line"$'\n'
done

# What parse-pdf does with them: the outline is skipped, and the page's
# text stored; the forms fail the document, at once.
check_eq "deep-outline.pdf is stored" "$(stored deep-outline.pdf)" 1
check_contains "deep-outline.pdf: its page's text" "$(text_of deep-outline.pdf)" \
    "all the text the deep outline file has"
check_contains "deep-outline.pdf: the outline skipped, and why" "$ERR" \
    "deep-outline.pdf: outline skipped: nested more than [0-9]+ deep"
check_contains "deep-forms.pdf fails for its nesting" "$(report_line deep-forms.pdf)" \
    "corpus/deep-forms.pdf \[pdf\]: cannot read the PDF's page 1: form XObjects nested more than [0-9]+ deep"

# --- second run: the same, the stored documents skipped ---
run_pdf --json
check_eq "rerun: the same exit status" "$RC" "$first_rc"
check_eq "rerun: every document accounted for" "$(json '.documents.total')" 4
check_eq "rerun: nothing new stored" "$(json '.documents.stored')" 0
check_eq "rerun: the stored ones skipped" "$(json '.documents.skipped')" "$(sql "$db" "SELECT count(*) FROM documents;")"
again_failed=""
for f in "${DEEP[@]}"; do
    again_failed+="$(jqo --arg u "corpus/$f" '.failed[] | select(.uri == $u) | "  \(.uri) [\(.stage)]: \(.reason)"')"$'\n'
done
check_eq "rerun: the same failures, for the same reasons" "$again_failed" "$first_failed"
check_eq "rerun: parse-pdf ran on the pool" "$(json '.stages[] | select(.name == "pdf") | .executor')" pool

finish
