/* tokenizer.c - WordPiece after BERT's basic tokenization, and the
 * dispatch to SentencePiece (spm_shim.cpp). See tokenizer.h.
 *
 * The text is read one code point at a time and each code point is
 * normalised on its own (lowercased, then NFD with the combining marks
 * dropped), keeping for every byte of the normalised word the input bytes
 * of the code point it came from; a WordPiece token's input range is then
 * the span of its first and last bytes' code points. Lowercasing per code
 * point matches Python's str.lower() except for context rules; the one that
 * changes BERT vocabularies, Greek final sigma, is applied here as Python
 * does (a capital sigma after a cased letter and not before one is ς).
 *
 * The vocabulary is an open-addressing hash of its lines (a later duplicate
 * line wins, as in Hugging Face's loader).
 */
#include "tokenizer.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include "spm_shim.h"

#define MAX_WORD_CHARS 100 /* BERT's max_input_chars_per_word: longer words are [UNK] */

typedef struct vocab {
    char **piece; /* by id */
    size_t n;
    int32_t *slot; /* hash: id + 1, 0 empty */
    size_t nslot;
} vocab;

struct tok {
    int kind; /* 0 wordpiece, 1 sentencepiece */
    bool lower, strip;
    vocab v;
    char *blob; /* the vocab file's bytes: the pieces point into it */
    spm_model *spm;
    int32_t cls, sep, pad, unk;
};

/* --- SentencePiece, from its own module (spm_shim.h says why) --- */

/* RTLD_DEEPBIND makes the module's own references bind inside it first;
 * the sanitizers' runtime refuses it, and there RTLD_LOCAL alone keeps the
 * module out of the scope libprotobuf binds in. */
#if defined(__SANITIZE_ADDRESS__)
#define SPM_DLOPEN_FLAGS (RTLD_NOW | RTLD_LOCAL)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPM_DLOPEN_FLAGS (RTLD_NOW | RTLD_LOCAL)
#endif
#endif
#ifndef SPM_DLOPEN_FLAGS
#define SPM_DLOPEN_FLAGS (RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND)
#endif

static const spm_api *spm;
static pthread_once_t spm_once = PTHREAD_ONCE_INIT;
static char spm_err[1024];

static void spm_load(void) {
    char path[4096];
    const char *dirs[2] = {NULL, getenv("SLUICE_PLUGIN_DIR")};
    Dl_info info;
    char self[4096] = "";
    if (dladdr((void *)spm_load, &info) && info.dli_fname) {
        snprintf(self, sizeof self, "%s", info.dli_fname);
        char *slash = strrchr(self, '/');
        if (slash) *slash = '\0', dirs[0] = self;
    }
    snprintf(spm_err, sizeof spm_err, "sluice-spm.shim not found next to the plugin");
    for (int i = 0; i < 2 && !spm; i++) {
        if (!dirs[i] || !*dirs[i]) continue;
        snprintf(path, sizeof path, "%s/sluice-spm.shim", dirs[i]);
        void *h = dlopen(path, SPM_DLOPEN_FLAGS);
        if (!h) {
            snprintf(spm_err, sizeof spm_err, "%s", dlerror());
            continue;
        }
        const spm_api *(*entry)(void) = (const spm_api *(*)(void))dlsym(h, "sluice_spm_api");
        if (entry) spm = entry();
    }
}

/* --- the vocabulary --- */

static uint64_t hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static int32_t vocab_find(const vocab *v, const char *s, size_t n) {
    if (!v->nslot) return -1;
    size_t m = v->nslot - 1;
    for (size_t i = (size_t)hash(s, n) & m;; i = (i + 1) & m) {
        int32_t e = v->slot[i];
        if (!e) return -1;
        const char *p = v->piece[e - 1];
        if (strlen(p) == n && memcmp(p, s, n) == 0) return e - 1;
    }
}

static int vocab_index(vocab *v) {
    size_t ns = 16;
    while (ns < v->n * 2) ns *= 2;
    v->slot = calloc(ns, sizeof *v->slot);
    if (!v->slot) return -1;
    v->nslot = ns;
    for (size_t id = 0; id < v->n; id++) {
        const char *p = v->piece[id];
        size_t n = strlen(p), m = ns - 1;
        for (size_t i = (size_t)hash(p, n) & m;; i = (i + 1) & m) {
            int32_t e = v->slot[i];
            if (!e || strcmp(v->piece[e - 1], p) == 0) {
                v->slot[i] = (int32_t)id + 1; /* a later duplicate wins */
                break;
            }
        }
    }
    return 0;
}

int tok_open_wordpiece(const char *path, bool lowercase, bool strip_accents, tok **out, char *err,
                       size_t errlen) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open vocab %s: %s", path, strerror(errno));
        return -1;
    }
    tok *t = calloc(1, sizeof *t);
    size_t cap = 1 << 20, len = 0;
    char *b = malloc(cap + 1);
    size_t r;
    while (t && b && (r = fread(b + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) {
            char *nb = cap < ((size_t)1 << 30) ? realloc(b, cap * 2 + 1) : NULL;
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    int ferr = ferror(f);
    fclose(f);
    if (!t || !b || ferr) {
        snprintf(err, errlen, "%s reading vocab %s", ferr ? "I/O error" : "out of memory", path);
        free(b);
        free(t);
        return -1;
    }
    b[len] = '\0';
    t->blob = b;
    t->lower = lowercase;
    t->strip = strip_accents;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += b[i] == '\n';
    t->v.piece = malloc((lines + 1) * sizeof *t->v.piece);
    if (!t->v.piece) goto oom;
    for (char *p = b; p < b + len;) {
        char *e = memchr(p, '\n', (size_t)(b + len - p));
        char *next = e ? e + 1 : b + len;
        if (!e) e = b + len;
        if (e > p && e[-1] == '\r') e--;
        *e = '\0';
        if (memchr(p, '\0', (size_t)(e - p))) {
            snprintf(err, errlen, "vocab %s line %zu: a NUL byte (not a vocab.txt)", path, t->v.n + 1);
            tok_free(t);
            return -1;
        }
        t->v.piece[t->v.n++] = p;
        p = next;
    }
    if (t->v.n < 5) {
        snprintf(err, errlen, "vocab %s has %zu lines: not a WordPiece vocab.txt", path, t->v.n);
        tok_free(t);
        return -1;
    }
    if (vocab_index(&t->v)) goto oom;
    t->cls = tok_id(t, "[CLS]");
    t->sep = tok_id(t, "[SEP]");
    t->pad = tok_id(t, "[PAD]");
    t->unk = tok_id(t, "[UNK]");
    if (t->pad < 0) t->pad = 0;
    if (t->unk < 0) {
        snprintf(err, errlen, "vocab %s has no [UNK] token", path);
        tok_free(t);
        return -1;
    }
    *out = t;
    return 0;
oom:
    snprintf(err, errlen, "out of memory reading vocab %s", path);
    tok_free(t);
    return -1;
}

int tok_open_spm(const char *path, tok **out, char *err, size_t errlen) {
    *out = NULL;
    tok *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    t->kind = 1;
    pthread_once(&spm_once, spm_load);
    if (!spm) {
        snprintf(err, errlen, "SentencePiece is not available: %s", spm_err);
        free(t);
        return -1;
    }
    if (spm->open(path, &t->spm, err, errlen)) {
        free(t);
        return -1;
    }
    t->cls = spm->piece_id(t->spm, "[CLS]");
    if (t->cls < 0) t->cls = spm->bos(t->spm);
    t->sep = spm->piece_id(t->spm, "[SEP]");
    if (t->sep < 0) t->sep = spm->eos(t->spm);
    t->pad = spm->pad(t->spm);
    if (t->pad < 0) t->pad = 0;
    t->unk = spm->unk(t->spm);
    *out = t;
    return 0;
}

void tok_free(tok *t) {
    if (!t) return;
    if (t->spm) spm->free(t->spm);
    free(t->v.piece);
    free(t->v.slot);
    free(t->blob);
    free(t);
}

int32_t tok_cls(const tok *t) { return t->cls; }
int32_t tok_sep(const tok *t) { return t->sep; }
int32_t tok_pad(const tok *t) { return t->pad; }
int32_t tok_unk(const tok *t) { return t->unk; }
size_t tok_specials(const tok *t) { return (size_t)(t->cls >= 0) + (size_t)(t->sep >= 0); }
size_t tok_vocab_size(const tok *t) { return t->kind ? spm->size(t->spm) : t->v.n; }
const char *tok_kind(const tok *t) { return t->kind ? "sentencepiece" : "wordpiece"; }
int32_t tok_id(const tok *t, const char *piece) {
    return t->kind ? spm->piece_id(t->spm, piece) : vocab_find(&t->v, piece, strlen(piece));
}

/* --- ids --- */

static int ids_push(tok_ids *o, int32_t id, size_t b, size_t e) {
    if (o->n == o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 64;
        int32_t *ni = realloc(o->id, nc * sizeof *ni);
        if (ni) o->id = ni;
        uint32_t *nb = ni ? realloc(o->begin, nc * sizeof *nb) : NULL;
        if (nb) o->begin = nb;
        uint32_t *ne = nb ? realloc(o->end, nc * sizeof *ne) : NULL;
        if (!ne) return -1;
        o->end = ne;
        o->cap = nc;
    }
    o->id[o->n] = id;
    o->begin[o->n] = (uint32_t)b;
    o->end[o->n] = (uint32_t)e;
    o->n++;
    return 0;
}

void tok_ids_clear(tok_ids *ids) { ids->n = 0; }

void tok_ids_free(tok_ids *ids) {
    free(ids->id);
    free(ids->begin);
    free(ids->end);
    memset(ids, 0, sizeof *ids);
}

static int spm_push(void *arg, int32_t id, size_t begin, size_t end) { return ids_push(arg, id, begin, end); }

/* --- BERT's basic tokenization --- */

/* The code point at s[*i] (invalid UTF-8: U+FFFD, one byte), *i moved past. */
static UChar32 next_cp(const char *s, size_t n, size_t *i) {
    const unsigned char *p = (const unsigned char *)s + *i;
    size_t left = n - *i;
    UChar32 c = p[0];
    int k = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
    if (k < 0 || (size_t)k >= left) {
        (*i)++;
        return 0xFFFD;
    }
    if (k == 0) {
        (*i)++;
        return c;
    }
    c &= 0x3F >> k;
    for (int j = 1; j <= k; j++) {
        if ((p[j] & 0xC0) != 0x80) {
            (*i)++;
            return 0xFFFD;
        }
        c = (c << 6) | (p[j] & 0x3F);
    }
    static const UChar32 least[4] = {0, 0x80, 0x800, 0x10000};
    if (c < least[k] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
        (*i)++;
        return 0xFFFD;
    }
    *i += (size_t)k + 1;
    return c;
}

static bool is_ws(UChar32 c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || u_charType(c) == U_SPACE_SEPARATOR;
}

/* Python's unicodedata category starting with "C", as BERT's _is_control */
static bool is_control(UChar32 c) {
    int8_t t = u_charType(c);
    return t == U_CONTROL_CHAR || t == U_FORMAT_CHAR || t == U_UNASSIGNED || t == U_PRIVATE_USE_CHAR ||
           t == U_SURROGATE;
}

static bool is_punct(UChar32 c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
        return true;
    int8_t t = u_charType(c);
    return t == U_DASH_PUNCTUATION || t == U_START_PUNCTUATION || t == U_END_PUNCTUATION ||
           t == U_CONNECTOR_PUNCTUATION || t == U_OTHER_PUNCTUATION || t == U_INITIAL_PUNCTUATION ||
           t == U_FINAL_PUNCTUATION;
}

/* BERT's _is_chinese_char: the CJK Unified Ideograph blocks */
static bool is_cjk(UChar32 c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) ||
           (c >= 0x2B820 && c <= 0x2CEAF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* A word being built: its normalised bytes, and for each byte the input
 * range of the code point it came from. */
typedef struct word {
    char *s;
    uint32_t *from, *to;
    size_t n, cap, chars;
    char *key; /* "##" + a piece, for lookups */
} word;

static int word_add(word *w, const char *s, size_t n, size_t from, size_t to) {
    if (w->n + n > w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 256;
        while (nc < w->n + n) nc *= 2;
        char *ns = realloc(w->s, nc);
        if (ns) w->s = ns;
        uint32_t *nf = ns ? realloc(w->from, nc * sizeof *nf) : NULL;
        if (nf) w->from = nf;
        uint32_t *nt = nf ? realloc(w->to, nc * sizeof *nt) : NULL;
        if (nt) w->to = nt;
        char *nk = nt ? realloc(w->key, nc + 3) : NULL;
        if (!nk) return -1;
        w->key = nk;
        w->cap = nc;
    }
    memcpy(w->s + w->n, s, n);
    for (size_t i = 0; i < n; i++) {
        w->from[w->n + i] = (uint32_t)from;
        w->to[w->n + i] = (uint32_t)to;
    }
    w->n += n;
    return 0;
}

/* WordPiece on the word: greedy longest match first; the whole word is
 * [UNK] when a piece cannot be matched or it is too long. */
static int wordpiece(const tok *t, word *w, size_t limit, tok_ids *out) {
    if (!w->n) return 0;
    size_t mark = out->n;
    if (w->chars > MAX_WORD_CHARS) goto unk;
    for (size_t start = 0; start < w->n;) {
        size_t end = w->n;
        int32_t id = -1;
        while (end > start) {
            size_t k = 0;
            if (start) w->key[k++] = '#', w->key[k++] = '#';
            memcpy(w->key + k, w->s + start, end - start);
            id = vocab_find(&t->v, w->key, k + end - start);
            if (id >= 0) break;
            end--;
            while (end > start && ((unsigned char)w->s[end] & 0xC0) == 0x80) end--;
        }
        if (id < 0) {
            out->n = mark;
            goto unk;
        }
        if (ids_push(out, id, w->from[start], w->to[end - 1])) return -1;
        start = end;
    }
    if (limit && out->n > limit) out->n = limit;
    w->n = w->chars = 0;
    return 0;
unk:
    if (ids_push(out, t->unk, w->from[0], w->to[w->n - 1])) return -1;
    w->n = w->chars = 0;
    return 0;
}

/* The code point c normalised: lowercased (sigma_final: as ς), accents
 * stripped; UTF-8 into out (at least 64 bytes), its length. */
static size_t normalise(const tok *t, UChar32 c, bool sigma_final, char *out) {
    UChar u[32], l[32];
    int32_t ul = 0;
    UErrorCode e = U_ZERO_ERROR;
    U16_APPEND_UNSAFE(u, ul, c);
    const UChar *cur = u;
    int32_t len = ul;
    if (t->lower) {
        if (c == 0x03A3 && sigma_final) {
            l[0] = 0x03C2;
            len = 1;
        } else {
            len = u_strToLower(l, 32, u, ul, "", &e);
            if (U_FAILURE(e) || len > 32) {
                e = U_ZERO_ERROR;
                memcpy(l, u, (size_t)ul * sizeof *u);
                len = ul;
            }
        }
        cur = l;
    }
    UChar d[64];
    if (t->strip) {
        const UNormalizer2 *nfd = unorm2_getNFDInstance(&e);
        int32_t dl = U_SUCCESS(e) ? unorm2_normalize(nfd, cur, len, d, 64, &e) : 0;
        if (U_SUCCESS(e) && dl <= 64) {
            int32_t k = 0;
            for (int32_t i = 0; i < dl;) {
                UChar32 x;
                U16_NEXT(d, i, dl, x);
                if (u_charType(x) != U_NON_SPACING_MARK) U16_APPEND_UNSAFE(d, k, x);
            }
            cur = d;
            len = k;
        }
    }
    size_t o = 0;
    for (int32_t i = 0; i < len && o + 4 <= 60;) {
        UChar32 x;
        U16_NEXT(cur, i, len, x);
        U8_APPEND_UNSAFE(out, o, x);
    }
    return o;
}

static bool cased(UChar32 c) { return c >= 0 && u_hasBinaryProperty(c, UCHAR_CASED); }

static int encode_wordpiece(const tok *t, const char *s, size_t n, size_t limit, tok_ids *out) {
    word w = {0};
    int rc = 0;
    UChar32 prev = -1; /* the code point before, within the whitespace-separated token */
    size_t i = 0;
    UChar32 c = n ? next_cp(s, n, &i) : -1;
    size_t at = 0;
    while (rc == 0 && c >= 0 && !(limit && out->n >= limit)) {
        size_t j = i;
        UChar32 nextc = i < n ? next_cp(s, n, &j) : -1;
        size_t from = at, to = i;
        if (c == 0 || c == 0xFFFD || (is_control(c) && !is_ws(c))) {
            /* dropped, as BERT's _clean_text does */
        } else if (is_ws(c)) {
            rc = wordpiece(t, &w, limit, out);
            prev = -1;
        } else if (is_cjk(c)) {
            rc = wordpiece(t, &w, limit, out);
            if (!rc) rc = word_add(&w, s + from, to - from, from, to);
            w.chars = 1;
            if (!rc) rc = wordpiece(t, &w, limit, out);
            prev = c;
        } else {
            char nb[64];
            bool final = c == 0x03A3 && cased(prev) && !(nextc >= 0 && cased(nextc));
            size_t k = normalise(t, c, final, nb);
            /* punctuation is looked for after normalisation, as BERT does */
            size_t p = 0;
            while (rc == 0 && p < k) {
                size_t q = p;
                UChar32 x = next_cp(nb, k, &q);
                if (is_punct(x)) {
                    rc = wordpiece(t, &w, limit, out);
                    if (!rc) rc = word_add(&w, nb + p, q - p, from, to);
                    w.chars = 1;
                    if (!rc) rc = wordpiece(t, &w, limit, out);
                } else {
                    rc = word_add(&w, nb + p, q - p, from, to);
                    w.chars++;
                }
                p = q;
            }
            prev = c;
        }
        at = i;
        i = j;
        c = nextc;
    }
    if (rc == 0 && !(limit && out->n >= limit)) rc = wordpiece(t, &w, limit, out);
    if (limit && out->n > limit) out->n = limit;
    free(w.s);
    free(w.from);
    free(w.to);
    free(w.key);
    return rc;
}

int tok_encode(const tok *t, const char *text, size_t len, size_t limit, tok_ids *out) {
    if (len > UINT32_MAX) len = UINT32_MAX; /* offsets are 32 bits; callers pass windows, not files */
    if (t->kind) {
        int rc = spm->encode(t->spm, text, len, spm_push, out);
        if (limit && out->n > limit) out->n = limit;
        return rc;
    }
    return encode_wordpiece(t, text, len, limit, out);
}

size_t tok_count(const tok *t, const char *text, size_t len) {
    tok_ids ids = {0};
    size_t n = tok_encode(t, text, len, 0, &ids) ? (size_t)-1 : ids.n;
    tok_ids_free(&ids);
    return n;
}
