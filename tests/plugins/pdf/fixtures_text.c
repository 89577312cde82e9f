/* fixtures_text.c - the known text of every fixture page (see fixtures.h),
 * and the helpers the tests compare with: reading a file back and the
 * character error rate. No mupdf here: the tests read the fixtures that
 * gen_fixtures wrote and link only this file.
 */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "fixtures.h"

const char *const fx_text_pages[FX_TEXT_PAGES] = {
    "# Chapter One: Harbours\n"
    "The harbour at dawn is quiet except for gulls and the slow knock of hulls.\n"
    "Fishermen mend their nets on the stone quay while the tide turns.\n"
    "A ferry leaves for the island at seven, carrying bread, post and tools.\n"
    "\n"
    "The lighthouse keeper writes the weather in a ledger every four hours.",
    "# Lanterns and Pilots\n"
    "The harbour pilot counted seventeen lanterns along the northern breakwater.\n"
    "Each lantern burns whale oil in old stories, but paraffin in the ledgers.\n"
    "Ships wait outside the bar until the pilot climbs aboard from his launch.",
    "# Chapter Two: Orchards\n"
    "Behind the town the orchards climb the hill in terraces of apple and pear.\n"
    "\n"
    "Pickers arrive in September and sleep in the long barn by the cider press.\n"
    "The oldest tree was grafted in 1887 and still gives a basket every autumn.",
};

/* The last entry has no heading line of its own on its page: its target is
 * the paragraph that starts at line 3 of page 3. */
const fx_heading fx_outline[FX_OUTLINE] = {
    {"Chapter One: Harbours", 1, 1},
    {"Lanterns and Pilots", 2, 2},
    {"Chapter Two: Orchards", 1, 3},
    {"The Cider Press", 2, 3},
};

const char *const fx_scan_pages[FX_SCAN_PAGES] = {
    "# Field Report\n"
    "Rain fell on the valley for three days and the river rose above the ford.\n"
    "The miller opened the sluice gates at noon to spare the lower meadows.\n"
    "By evening the water had fallen and the geese returned to the banks.",
    "Supplies for the winter: forty sacks of flour, twelve barrels of salt fish,\n"
    "nine crates of candles and a new copper kettle for the schoolhouse.\n"
    "The carpenter promised to repair the bridge before the first frost.",
};

const char *const fx_mixed_pages[3] = {
    "The mixed document begins with a page that has a real text layer.\n"
    "Its words can be copied and searched without any recognition at all.",
    "The second page was scanned from paper and has no text layer.\n"
    "Only optical character recognition can read these quiet words.",
    "The third page returns to ordinary text drawn with a font.",
};

const char *const fx_image_pages[2] = {
    "A photograph of a notice board shows the opening hours of the library.\n"
    "Monday to Friday from nine until six, Saturday mornings only.",
    "The second page of the scan lists the reading room rules.\n"
    "No food, no ink pens, and keep your voice down near the maps.",
};

const char *const fx_secret_page = "This confidential memo is locked with a password.\n"
                                   "The treasure is buried under the third olive tree.";

char *fx_plain(const char *page) {
    char *out = malloc(strlen(page) + 1);
    if (!out) return NULL;
    size_t n = 0;
    for (const char *p = page; *p;) {
        if (p[0] == '#' && p[1] == ' ' && (p == page || p[-1] == '\n')) p += 2;
        out[n++] = *p++;
    }
    out[n] = '\0';
    return out;
}

char *fx_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            char *nb = realloc(buf, cap = cap * 2 + 65536);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* --- character error rate --- */

static char *normalise(const char *s) {
    char *out = malloc(strlen(s) + 1);
    if (!out) return NULL;
    size_t n = 0;
    int space = 0;
    for (; *s; s++) {
        if (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r') {
            space = n > 0;
            continue;
        }
        if (space) out[n++] = ' ';
        space = 0;
        out[n++] = *s;
    }
    out[n] = '\0';
    return out;
}

double fx_cer(const char *got, const char *want) {
    char *a = normalise(got), *b = normalise(want);
    size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0;
    size_t *row = malloc((lb + 1) * sizeof *row);
    double cer = 1.0;
    if (a && b && row && lb > 0) {
        for (size_t j = 0; j <= lb; j++) row[j] = j;
        for (size_t i = 1; i <= la; i++) {
            size_t diag = row[0];
            row[0] = i;
            for (size_t j = 1; j <= lb; j++) {
                size_t up = row[j];
                size_t best = diag + (a[i - 1] != b[j - 1]);
                if (up + 1 < best) best = up + 1;
                if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
                row[j] = best;
                diag = up;
            }
        }
        cer = (double)row[lb] / (double)lb;
    }
    free(row);
    free(a);
    free(b);
    return cer;
}
