/* cer.c - character error rate between a reference text and extracted text:
 *
 *   cer REF_FILE HYP_FILE        prints "cer=0.0042 dist=12 ref=2843 hyp=2851"
 *
 * Both texts are normalised first, so that layout is not counted as error:
 * runs of whitespace become one space, and table drawing is removed ('|'
 * and runs of three or more '-', '=' or '+', which pandoc's plain tables and
 * our " | " cells use). Then the Levenshtein distance over Unicode code
 * points (two rows, O(n*m) time, O(m) memory) divided by the reference's
 * length. Exit 0 when measured, 2 on a usage or read error.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap);
    size_t r;
    while (p && (r = fread(p + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) p = realloc(p, cap *= 2);
    }
    fclose(f);
    *len = n;
    return p;
}

static int is_space(uint32_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == 0xA0;
}
static int is_rule(uint32_t c) { return c == '-' || c == '=' || c == '+'; }

/* UTF-8 into code points (a bad byte is itself), normalised as above. */
static uint32_t *normalise(const char *s, size_t len, size_t *out) {
    uint32_t *cp = malloc((len + 1) * sizeof *cp);
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        uint32_t v = c;
        size_t k = 1;
        if (c >= 0xF0 && i + 3 < len)
            v = ((c & 7u) << 18) | ((s[i + 1] & 63u) << 12) | ((s[i + 2] & 63u) << 6) | (s[i + 3] & 63u),
            k = 4;
        else if (c >= 0xE0 && i + 2 < len)
            v = ((c & 15u) << 12) | ((s[i + 1] & 63u) << 6) | (s[i + 2] & 63u), k = 3;
        else if (c >= 0xC0 && i + 1 < len)
            v = ((c & 31u) << 6) | (s[i + 1] & 63u), k = 2;
        cp[n++] = v;
        i += k;
    }
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (cp[i] == '|') {
            cp[i] = ' ';
        }
        if (is_rule(cp[i])) {
            size_t j = i;
            while (j < n && cp[j] == cp[i]) j++;
            if (j - i >= 3) {
                i = j;
                if (o && cp[o - 1] != ' ') cp[o++] = ' ';
                continue;
            }
        }
        if (is_space(cp[i])) {
            if (o && cp[o - 1] != ' ') cp[o++] = ' ';
            i++;
            continue;
        }
        cp[o++] = cp[i++];
    }
    while (o && cp[o - 1] == ' ') o--;
    size_t start = o && cp[0] == ' ' ? 1 : 0;
    memmove(cp, cp + start, (o - start) * sizeof *cp);
    *out = o - start;
    return cp;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: cer REF_FILE HYP_FILE\n");
        return 2;
    }
    size_t rl, hl;
    char *r = slurp(argv[1], &rl), *h = slurp(argv[2], &hl);
    if (!r || !h) {
        fprintf(stderr, "cer: cannot read %s\n", r ? argv[2] : argv[1]);
        return 2;
    }
    size_t n, m;
    uint32_t *a = normalise(r, rl, &n), *b = normalise(h, hl, &m);
    size_t *prev = malloc((m + 1) * sizeof *prev), *cur = malloc((m + 1) * sizeof *cur);
    for (size_t j = 0; j <= m; j++) prev[j] = j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t d = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = d < del ? (d < ins ? d : ins) : (del < ins ? del : ins);
        }
        size_t *t = prev;
        prev = cur;
        cur = t;
    }
    size_t dist = prev[m];
    printf("cer=%.4f dist=%zu ref=%zu hyp=%zu\n", n ? (double)dist / (double)n : (m ? 1.0 : 0.0), dist, n, m);
    free(a), free(b), free(prev), free(cur), free(r), free(h);
    return 0;
}
