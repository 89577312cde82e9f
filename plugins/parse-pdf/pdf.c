/* pdf.c - parse-pdf: a PDF's text layer, metadata and outline, through mupdf.
 *
 * Every text block mupdf finds on a page becomes a paragraph element with
 * its page, its bounding box (PDF points, origin at the top left of the
 * page) and the 1-based index of its first line among the page's lines.
 * The outline becomes heading elements (level = depth) on the pages they
 * point at: a heading whose title matches a block of its page replaces that
 * block; any other is placed before the first block below its target. The
 * information dictionary becomes metadata (title, author, subject,
 * keywords, creator, producer, created and modified as ISO 8601, format,
 * pages).
 *
 * A page without text gets no elements, only its place in the page count:
 * page stages (render-pdf, then ocr-tesseract) fill it, and whether a
 * document has any text at all is decided after them. A page whose text
 * layer is mostly glyphs without Unicode mapping (U+FFFD) counts as having
 * none, so it goes to OCR too.
 *
 * Nesting is counted before mupdf recurses into it. mupdf loads an outline,
 * and looks for transparency through a page's form XObjects and patterns,
 * by recursion one frame per level (about 110 and 155 bytes of stack),
 * and the forms' recursion checks each level against every level above it
 * (time quadratic in the depth). Object streams pack millions of outline
 * levels into a file under max_file_size, more than a 256 MB pool stack
 * holds. So the outline and each page's resources are walked here first,
 * iteratively: an outline nested deeper than MAX_OUTLINE_DEPTH is skipped,
 * and a page whose forms nest deeper than MAX_FORM_DEPTH fails the
 * document (mupdf cannot draw forms nested past about 85 levels anyway).
 *
 * mupdf's rules, kept here: a document belongs to the context that opened
 * it, and each pool thread has its own context (plugins/common/mupdf.h:
 * independent by default, cloned from one base context with mupdf's lock
 * callbacks when `shared_cache` is on). Nothing returns or jumps out of an
 * fz_try block: each step runs in a function with one
 * fz_try, variables changed inside it are fz_var'd, and failures are
 * recorded in the job and acted on after the block.
 */
#include <mupdf/fitz.h>
#include <mupdf/pdf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#include "mupdf.h"
#include "textbuf.h"

#define MAX_LEVEL 6             /* deepest heading level an element carries */
#define MAX_OUTLINE 100000      /* outline entries read; more are ignored */
#define MAX_OUTLINE_DEPTH 10000 /* a deeper outline is skipped (mupdf loads it by recursion) */
#define MAX_FORM_DEPTH 1000     /* a page with forms nested deeper fails (mupdf walks them by recursion) */
#define TAIL_BYTES 1024         /* where %%EOF must be, as PDF readers look for it */
#define HEAD_BYTES 1024         /* where %PDF- must be */
#define FFFD_SHARE_DENOM 2      /* a page with more than 1/2 U+FFFD has no usable text */

typedef struct pp_config {
    const char *password;
    bool outline;
    bool allow_truncated;
    uint64_t cache;
    bool shared_cache;
} pp_config;

/* Read-only after init, except for the mutexes mupdf locks through. */
typedef struct pp_state {
    sl_instance *inst;
    slmu mu;
    const char *password; /* NULL: none configured */
    bool outline;
    bool allow_truncated;
} pp_state;

static const sl_option options[] = {
    {.name = "password",
     .type = SL_OPT_STRING,
     .help = "password for encrypted PDFs (use ${ENV} interpolation; never printed)",
     .flags = SL_OPT_SECRET,
     .offset = offsetof(pp_config, password)},
    {.name = "outline",
     .type = SL_OPT_BOOL,
     .def = "true",
     .help = "turn the document outline (bookmarks) into heading elements",
     .offset = offsetof(pp_config, outline)},
    {.name = "allow_truncated",
     .type = SL_OPT_BOOL,
     .def = "false",
     .help = "keep what mupdf can recover from a file cut short (no %EOF at its end) instead of failing it",
     .offset = offsetof(pp_config, allow_truncated)},
    SLMU_OPTIONS(pp_config),
    {0},
};

/* --- the instance and its threads --- */

static void free_state(pp_state *st) {
    slmu_fini(&st->mu);
    free(st);
}

static int init(sl_instance *inst, const void *config, void **state) {
    const pp_config *cf = config;
    pp_state *st = calloc(1, sizeof *st);
    if (!st) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    st->inst = inst;
    st->password = cf->password && *cf->password ? cf->password : NULL;
    st->outline = cf->outline;
    st->allow_truncated = cf->allow_truncated;
    int rc = slmu_init(&st->mu, inst, (size_t)cf->cache, cf->shared_cache);
    if (rc) {
        free(st);
        return rc;
    }
    *state = st;
    return 0;
}

static void fini(void *state) { free_state(state); }

static int thread_init(void *state, void **thread_state) {
    pp_state *st = state;
    slmu_thread *t = calloc(1, sizeof *t);
    if (!t) return SL_ENOMEM;
    int rc = slmu_thread_init(&st->mu, t);
    if (rc) {
        free(t);
        return rc;
    }
    *thread_state = t;
    return 0;
}

static void thread_fini(void *state, void *thread_state) {
    (void)state;
    slmu_thread_fini(thread_state);
    free(thread_state);
}

/* --- one document --- */

typedef struct heading {
    char *title;
    int level;
    int page;     /* 0-based */
    float y;      /* target's top, page space; 0 when unknown */
    size_t order; /* in the outline */
    bool placed;
} heading;

typedef struct job {
    sl_call *call;
    sl_doc *doc;
    fz_context *ctx;
    const pp_state *st;
    fz_document *fdoc;
    int npages;
    heading *heads; /* by page, then outline order */
    size_t nheads, cheads;
    size_t hfirst, hend; /* the current page's headings: heads[hfirst..hend) */
    buf text;
    int rc; /* first failure, already recorded with sl_fail */
    char why[512];
} job;

static int job_fail(job *j, int code, const char *fmt, const char *arg) {
    if (!j->rc) j->rc = sl_fail(j->call, code, fmt, arg);
    return j->rc;
}

static bool has(const char *data, size_t len, const char *needle) {
    return memmem(data, len, needle, strlen(needle)) != NULL;
}

/* Refuses what is not a PDF or was cut short, before mupdf repairs it into
 * a partial document that would be stored as if whole. */
static int check_bytes(job *j, const char *data, size_t len) {
    if (len == 0) return job_fail(j, SL_EBADINPUT, "%s", "empty file");
    if (!has(data, len < HEAD_BYTES ? len : HEAD_BYTES, "%PDF-"))
        return job_fail(j, SL_EBADINPUT, "%s", "not a PDF: no %PDF- header in its first 1 KiB");
    size_t tail = len < TAIL_BYTES ? len : TAIL_BYTES;
    if (!j->st->allow_truncated && !has(data + len - tail, tail, "%%EOF"))
        return job_fail(j, SL_EBADINPUT, "%s",
                        "truncated PDF: no %EOF marker at its end (the file is incomplete; "
                        "allow_truncated = true keeps what can be recovered)");
    return 0;
}

static int open_doc(job *j, const char *data, size_t len) {
    fz_context *ctx = j->ctx;
    fz_stream *stm = NULL;
    int failed = 0;
    fz_var(stm);
    fz_var(failed);
    fz_try(ctx) {
        stm = fz_open_memory(ctx, (const unsigned char *)data, len);
        j->fdoc = fz_open_document_with_stream(ctx, "application/pdf", stm);
    }
    fz_always(ctx) fz_drop_stream(ctx, stm);
    fz_catch(ctx) {
        snprintf(j->why, sizeof j->why, "%s", fz_caught_message(ctx));
        failed = 1;
    }
    if (failed) return job_fail(j, SL_EBADINPUT, "cannot open the PDF: %s", j->why);
    return 0;
}

static int authenticate(job *j) {
    fz_context *ctx = j->ctx;
    int needs = 0, ok = 0, failed = 0;
    const char *pw = j->st->password;
    fz_var(needs);
    fz_var(ok);
    fz_var(failed);
    fz_try(ctx) {
        needs = fz_needs_password(ctx, j->fdoc);
        if (needs && pw) ok = fz_authenticate_password(ctx, j->fdoc, pw);
    }
    fz_catch(ctx) {
        snprintf(j->why, sizeof j->why, "%s", fz_caught_message(ctx));
        failed = 1;
    }
    if (failed) return job_fail(j, SL_EBADINPUT, "cannot decrypt the PDF: %s", j->why);
    if (needs && !pw)
        return job_fail(j, SL_EBADINPUT, "encrypted PDF: needs a password (set [%s] password)",
                        sl_instance_name(j->st->inst));
    if (needs && !ok)
        return job_fail(j, SL_EBADINPUT, "encrypted PDF: the password in [%s] password does not open it",
                        sl_instance_name(j->st->inst));
    return 0;
}

/* PDF dates ("D:YYYYMMDDHHmmSSOHH'mm'", every part after the year optional)
 * as ISO 8601; NULL when s is not one. */
static char *iso_date(const char *s, char *out, size_t cap) {
    if (s[0] == 'D' && s[1] == ':') s += 2;
    static const char seps[] = "--T::";
    size_t n = 0, digits = 0;
    while (s[digits] >= '0' && s[digits] <= '9') digits++;
    if (digits < 4 || digits > 14 || digits % 2 || cap < 32) return NULL;
    for (size_t i = 0; i < digits; i++) {
        if (i >= 4 && i % 2 == 0) out[n++] = seps[i / 2 - 2];
        out[n++] = s[i];
    }
    s += digits;
    if (digits == 14 && (*s == 'Z' || *s == 'z')) {
        out[n++] = 'Z';
    } else if (digits == 14 && (*s == '+' || *s == '-') && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' &&
               s[2] <= '9') {
        out[n++] = *s;
        out[n++] = s[1];
        out[n++] = s[2];
        out[n++] = ':';
        const char *m = s[3] == '\'' ? s + 4 : s + 3;
        bool mm = m[0] >= '0' && m[0] <= '9' && m[1] >= '0' && m[1] <= '9';
        out[n++] = mm ? m[0] : '0';
        out[n++] = mm ? m[1] : '0';
    }
    out[n] = '\0';
    return out;
}

/* fz_lookup_metadata, with -1 for "absent" when mupdf throws. */
static int lookup(job *j, const char *key, char *value, int size) {
    fz_context *ctx = j->ctx;
    int n = -1;
    fz_var(n);
    fz_try(ctx) n = fz_lookup_metadata(ctx, j->fdoc, key, value, size);
    fz_catch(ctx) n = -1;
    return n;
}

/* Metadata is a courtesy: a dictionary mupdf cannot read is skipped. */
static void read_metadata(job *j) {
    static const struct {
        const char *key, *meta;
        bool date;
    } keys[] = {
        {FZ_META_INFO_TITLE, "title", false},
        {FZ_META_INFO_AUTHOR, "author", false},
        {FZ_META_INFO_SUBJECT, "subject", false},
        {FZ_META_INFO_KEYWORDS, "keywords", false},
        {FZ_META_INFO_CREATOR, "creator", false},
        {FZ_META_INFO_PRODUCER, "producer", false},
        {FZ_META_INFO_CREATIONDATE, "created", true},
        {FZ_META_INFO_MODIFICATIONDATE, "modified", true},
        {FZ_META_FORMAT, "format", false},
    };
    fz_context *ctx = j->ctx;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && !j->rc; i++) {
        char value[1024], iso[64];
        if (lookup(j, keys[i].key, value, sizeof value) <= 1) continue; /* absent or empty */
        size_t len = strnlen(value, sizeof value);
        while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t')) value[--len] = '\0';
        if (len == 0 || !sl_utf8_valid(value, len, NULL)) continue;
        const char *v = keys[i].date ? iso_date(value, iso, sizeof iso) : value;
        if (sl_doc_meta_set(j->doc, keys[i].meta, v ? v : value) < 0)
            job_fail(j, SL_ENOMEM, "%s", "out of memory");
    }
    int repaired = 0;
    fz_var(repaired);
    fz_try(ctx) {
        pdf_document *pdf = pdf_specifics(ctx, j->fdoc);
        repaired = pdf && pdf_was_repaired(ctx, pdf);
    }
    fz_catch(ctx) repaired = 0;
    if (repaired && sl_doc_meta_set(j->doc, "repaired", "true") < 0)
        job_fail(j, SL_ENOMEM, "%s", "out of memory");
}

/* The page tree, checked and its counts corrected before any page is read
 * (plugins/common/mupdf.h). */
static int check_page_tree(job *j) {
    int64_t said = 0, found = 0;
    if (slmu_check_page_tree(j->ctx, j->fdoc, &said, &found, j->why, sizeof j->why))
        return job_fail(j, SL_EBADINPUT, "cannot read the PDF's %s", j->why);
    if (found != said)
        sl_log(j->st->inst, SL_LOG_WARN, "%s: the page tree says %lld pages and holds %lld: reading %lld",
               sl_doc_uri(j->doc), (long long)said, (long long)found, (long long)found);
    return 0;
}

static int count_pages(job *j) {
    fz_context *ctx = j->ctx;
    int n = -1;
    fz_var(n);
    fz_try(ctx) n = fz_count_pages(ctx, j->fdoc);
    fz_catch(ctx) {
        snprintf(j->why, sizeof j->why, "%s", fz_caught_message(ctx));
        n = -1;
    }
    if (n < 0) return job_fail(j, SL_EBADINPUT, "cannot count the PDF's pages: %s", j->why);
    if (n == 0) return job_fail(j, SL_EBADINPUT, "%s", "the PDF has no pages");
    j->npages = n;
    char pages[16];
    snprintf(pages, sizeof pages, "%d", n);
    if (sl_doc_set_page_count(j->doc, (uint32_t)n) < 0 || sl_doc_meta_set(j->doc, "pages", pages) < 0)
        return job_fail(j, SL_ENOMEM, "%s", "out of memory");
    return 0;
}

/* --- the outline --- */

static char *trimmed_copy(const char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
    return strndup(s, n);
}

/* The 0-based page an outline entry points at; -1 when none. */
static int target_page(job *j, fz_outline *item) {
    fz_context *ctx = j->ctx;
    int page = -1;
    fz_var(page);
    fz_try(ctx) page = fz_page_number_from_location(ctx, j->fdoc, item->page);
    fz_catch(ctx) page = -1;
    return page;
}

/* Flattens the outline depth first, without recursion: a hostile file can
 * nest it as deep as it likes. Entries that point outside the document (or
 * nowhere) are not headings of its text and are left out. */
static void flatten_outline(job *j, fz_outline *root) {
    typedef struct frame {
        fz_outline *node;
        int depth;
    } frame;
    frame *stack = NULL;
    size_t n = 0, cap = 0;
    if (root) {
        stack = malloc(64 * sizeof *stack);
        cap = stack ? 64 : 0;
        if (stack) stack[n++] = (frame){root, 1};
    }
    while (n > 0 && j->nheads < MAX_OUTLINE) {
        frame f = stack[--n];
        /* siblings after, children before: depth first, in document order */
        if (n + 2 > cap) {
            frame *ns = realloc(stack, (cap *= 2) * sizeof *ns);
            if (!ns) break;
            stack = ns;
        }
        if (f.node->next) stack[n++] = (frame){f.node->next, f.depth};
        if (f.node->down) stack[n++] = (frame){f.node->down, f.depth + 1};
        int page = target_page(j, f.node);
        if (page < 0 || page >= j->npages || !f.node->title) continue;
        char *title = trimmed_copy(f.node->title);
        if (!title || !*title || !sl_utf8_valid(title, strlen(title), NULL)) {
            free(title);
            continue;
        }
        if (j->nheads == j->cheads) {
            size_t nc = j->cheads ? j->cheads * 2 : 16;
            heading *nh = realloc(j->heads, nc * sizeof *nh);
            if (!nh) {
                free(title);
                break;
            }
            j->heads = nh;
            j->cheads = nc;
        }
        float y = f.node->y == f.node->y ? f.node->y : 0; /* NaN: unknown */
        j->heads[j->nheads] =
            (heading){title, f.depth < MAX_LEVEL ? f.depth : MAX_LEVEL, page, y, j->nheads, false};
        j->nheads++;
    }
    free(stack);
}

static int by_page(const void *a, const void *b) {
    const heading *x = a, *y = b;
    if (x->page != y->page) return x->page < y->page ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* A stack of PDF objects: the path of a walk that must not recurse. */
typedef struct objpath {
    pdf_obj **p;
    size_t n, cap;
} objpath;

static void path_push(fz_context *ctx, objpath *path, pdf_obj *obj) {
    if (path->n == path->cap) {
        size_t nc = path->cap ? path->cap * 2 : 64;
        path->p = fz_realloc_array(ctx, path->p, nc, pdf_obj *);
        path->cap = nc;
    }
    path->p[path->n++] = obj;
}

/* How deep the outline nests, walked without recursion: at most cap + 1
 * (stops there), 0 without an outline, -1 when mupdf cannot read it (its
 * own load then says why). Each entry is visited once: an entry met again
 * ends its branch, as a cycle makes mupdf refuse the outline anyway. */
static int outline_depth(job *j, int cap) {
    fz_context *ctx = j->ctx;
    pdf_mark_bits *seen = NULL;
    objpath up = {0}; /* the entries whose children are being walked */
    int depth = 0;
    fz_var(seen);
    fz_var(up);
    fz_var(depth);
    fz_try(ctx) {
        pdf_document *pdf = pdf_specifics(ctx, j->fdoc);
        pdf_obj *root = pdf ? pdf_dict_get(ctx, pdf_trailer(ctx, pdf), PDF_NAME(Root)) : NULL;
        pdf_obj *node = pdf_dict_getl(ctx, root, PDF_NAME(Outlines), PDF_NAME(First), NULL);
        seen = pdf ? pdf_new_mark_bits(ctx, pdf) : NULL;
        while (seen && depth <= cap) {
            if (pdf_is_dict(ctx, node) && !pdf_mark_bits_set(ctx, seen, node)) {
                if ((int)up.n + 1 > depth) depth = (int)up.n + 1;
                pdf_obj *first = pdf_dict_get(ctx, node, PDF_NAME(First));
                if (first) {
                    path_push(ctx, &up, node);
                    node = first;
                } else {
                    node = pdf_dict_get(ctx, node, PDF_NAME(Next));
                }
            } else if (up.n > 0) {
                node = pdf_dict_get(ctx, up.p[--up.n], PDF_NAME(Next));
            } else {
                break;
            }
        }
    }
    fz_always(ctx) {
        pdf_drop_mark_bits(ctx, seen);
        fz_free(ctx, up.p);
    }
    fz_catch(ctx) depth = -1;
    return depth;
}

static void read_outline(job *j) {
    fz_context *ctx = j->ctx;
    fz_outline *ol = NULL;
    if (outline_depth(j, MAX_OUTLINE_DEPTH) > MAX_OUTLINE_DEPTH) {
        sl_log(j->st->inst, SL_LOG_WARN, "%s: outline skipped: nested more than %d deep", sl_doc_uri(j->doc),
               MAX_OUTLINE_DEPTH);
        return;
    }
    fz_var(ol);
    fz_try(ctx) {
        ol = fz_load_outline(ctx, j->fdoc);
        flatten_outline(j, ol);
    }
    fz_always(ctx) fz_drop_outline(ctx, ol);
    fz_catch(ctx) sl_log(j->st->inst, SL_LOG_DEBUG, "%s: outline skipped: %s", sl_doc_uri(j->doc),
                         fz_caught_message(ctx));
    if (j->nheads > 1) qsort(j->heads, j->nheads, sizeof *j->heads, by_page);
}

/* --- pages --- */

static bool is_ws(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* a and b equal when runs of whitespace are taken as one space. */
static bool same_words(const char *a, size_t an, const char *b) {
    size_t i = 0;
    for (;;) {
        while (i < an && is_ws(a[i])) i++;
        while (*b && is_ws(*b)) b++;
        if (i == an || !*b) return i == an && !*b;
        while (i < an && *b && !is_ws(a[i]) && !is_ws(*b)) {
            if (a[i] != *b) return false;
            i++, b++;
        }
        if ((i < an && !is_ws(a[i])) || (*b && !is_ws(*b))) return false;
    }
}

static int add_elem(job *j, sl_elem_type type, const char *text, size_t len, int page, uint32_t line,
                    const fz_rect *box, int level) {
    int i = sl_doc_add_element(j->doc, type, text, len);
    if (i < 0) return job_fail(j, SL_ENOMEM, "%s", "out of memory");
    size_t e = (size_t)i;
    sl_elem_set_page(j->doc, e, (uint32_t)page + 1);
    sl_elem_set_source(j->doc, e, 0, line);
    if (box) sl_elem_set_bbox(j->doc, e, box->x0, box->y0, box->x1, box->y1);
    if (level) sl_elem_set_level(j->doc, e, level);
    return 0;
}

static int add_heading(job *j, heading *h, const fz_rect *box, uint32_t line) {
    h->placed = true;
    return add_elem(j, SL_EL_HEADING, h->title, strlen(h->title), h->page, line, box, h->level);
}

/* A block's text into j->text: lines joined by '\n', each line's ends
 * trimmed; control characters become spaces. */
static int block_text(job *j, fz_stext_block *b) {
    j->text.len = 0;
    if (buf_reserve(&j->text, 0)) return -1;
    j->text.p[0] = '\0';
    for (fz_stext_line *ln = b->u.t.first_line; ln; ln = ln->next) {
        size_t start = j->text.len;
        if (start > 0 && buf_add(&j->text, "\n", 1)) return -1;
        size_t body = j->text.len;
        for (fz_stext_char *ch = ln->first_char; ch; ch = ch->next) {
            char u[FZ_UTFMAX];
            int c = ch->c < 0x20 || ch->c == 0x7f ? ' ' : ch->c;
            if (c == ' ' && j->text.len == body) continue;
            if (buf_add(&j->text, u, (size_t)fz_runetochar(u, c))) return -1;
        }
        while (j->text.len > body && is_ws(j->text.p[j->text.len - 1])) j->text.len--;
        if (j->text.len == body) j->text.len = start; /* an empty line adds nothing */
        j->text.p[j->text.len] = '\0';
    }
    return 0;
}

/* Whether the page's text is real: mostly characters with a Unicode
 * mapping. Counts the characters (*all) and says whether to keep them. */
static bool usable_text(fz_stext_page *tp, size_t *all_out) {
    size_t all = 0, bad = 0;
    for (fz_stext_block *b = tp->first_block; b; b = b->next) {
        if (b->type != FZ_STEXT_BLOCK_TEXT) continue;
        for (fz_stext_line *ln = b->u.t.first_line; ln; ln = ln->next)
            for (fz_stext_char *ch = ln->first_char; ch; ch = ch->next) {
                if (ch->c == ' ') continue;
                all++;
                bad += ch->c == 0xFFFD;
            }
    }
    *all_out = all;
    return all > 0 && bad * FFFD_SHARE_DENOM <= all;
}

/* The page's blocks and the outline's headings for it, in reading order. A
 * page with more headings than MAX_MATCHED gets them all at its top: placing
 * them costs blocks x headings, which a hostile outline could make huge. */
#define MAX_MATCHED 256
static void emit_page(job *j, int pno, fz_stext_page *tp) {
    while (j->hfirst < j->nheads && j->heads[j->hfirst].page < pno) j->hfirst++;
    j->hend = j->hfirst;
    while (j->hend < j->nheads && j->heads[j->hend].page == pno) j->hend++;
    /* no outline: heads is NULL, and even NULL + 0 is undefined */
    heading *first = j->heads ? j->heads + j->hfirst : NULL, *end = j->heads ? j->heads + j->hend : NULL;
    bool place = j->hend - j->hfirst <= MAX_MATCHED;
    uint32_t line = 1;
    size_t chars;
    bool text = usable_text(tp, &chars);
    if (!text && chars > 0)
        sl_log(j->st->inst, SL_LOG_DEBUG, "%s: page %d: text layer of unmapped glyphs ignored (left for OCR)",
               sl_doc_uri(j->doc), pno + 1);
    for (heading *h = first; !place && h < end && !j->rc; h++) add_heading(j, h, NULL, line);
    for (fz_stext_block *b = text ? tp->first_block : NULL; b && !j->rc; b = b->next) {
        if (b->type != FZ_STEXT_BLOCK_TEXT) continue;
        if (block_text(j, b)) {
            job_fail(j, SL_ENOMEM, "%s", "out of memory");
            break;
        }
        uint32_t lines = 0;
        for (fz_stext_line *ln = b->u.t.first_line; ln; ln = ln->next) lines++;
        if (j->text.len == 0) {
            line += lines;
            continue;
        }
        heading *match = NULL;
        for (heading *h = first; place && h < end && !match; h++)
            if (!h->placed && same_words(j->text.p, j->text.len, h->title)) match = h;
        /* headings whose target lies above this block's middle come first */
        float mid = (b->bbox.y0 + b->bbox.y1) / 2;
        for (heading *h = first; place && h < end && !j->rc; h++)
            if (!h->placed && h != match && h->y <= mid && (!match || h < match))
                add_heading(j, h, NULL, line);
        if (match)
            add_heading(j, match, &b->bbox, line);
        else
            add_elem(j, SL_EL_PARAGRAPH, j->text.p, j->text.len, pno, line, &b->bbox, 0);
        line += lines;
    }
    for (heading *h = first; h < end && !j->rc; h++)
        if (!h->placed) add_heading(j, h, NULL, line);
}

/* A walk of a page's forms and patterns: what it has seen, and its path. */
typedef struct form_frame {
    pdf_obj *rdb; /* a resource dictionary */
    int kind;     /* 0: its /Pattern entries are next, 1: its /XObject entries */
    int i;        /* the next entry */
} form_frame;

typedef struct form_walk {
    pdf_mark_bits *seen;
    form_frame *stack;
    size_t cap;
} form_walk;

/* The forms and patterns under resource dictionary rdb, walked depth first
 * without recursion as mupdf walks them when it loads a page: the deepest
 * nesting below rdb plus base, stopping past cap. Objects already seen
 * (shared forms, cycles) are not walked again, as mupdf remembers what it
 * found in them. Throws on what mupdf cannot read, and when out of memory;
 * the caller frees w->stack. */
static int resource_depth(fz_context *ctx, form_walk *w, pdf_obj *rdb, int base, int cap) {
    size_t n = 0;
    int depth = base;
    if (!pdf_is_dict(ctx, rdb)) return depth;
    if (!w->stack) {
        w->stack = fz_malloc_array(ctx, 64, form_frame);
        w->cap = 64;
    }
    w->stack[n++] = (form_frame){rdb, 0, 0};
    while (n > 0 && depth <= cap) {
        form_frame *f = &w->stack[n - 1];
        pdf_obj *dict = pdf_dict_get(ctx, f->rdb, f->kind == 0 ? PDF_NAME(Pattern) : PDF_NAME(XObject));
        if (f->i >= pdf_dict_len(ctx, dict)) {
            if (++f->kind == 2) n--;
            f->i = 0;
            continue;
        }
        pdf_obj *x = pdf_dict_get_val(ctx, dict, f->i++);
        if (!pdf_is_dict(ctx, x) || pdf_mark_bits_set(ctx, w->seen, x)) continue;
        pdf_obj *res = pdf_dict_get(ctx, x, PDF_NAME(Resources));
        if (!pdf_is_dict(ctx, res) || pdf_mark_bits_set(ctx, w->seen, res)) continue;
        if (n == w->cap) {
            w->stack = fz_realloc_array(ctx, w->stack, w->cap * 2, form_frame);
            w->cap *= 2;
        }
        w->stack[n++] = (form_frame){res, 0, 0};
        if (base + (int)n - 1 > depth) depth = base + (int)n - 1;
    }
    return depth;
}

/* How deep page pno's forms and patterns nest, its annotations'
 * appearances included (mupdf walks those too): at most cap + 1, 0 when
 * mupdf cannot read them (loading the page then says why). */
static int page_form_depth(job *j, int pno, int cap) {
    fz_context *ctx = j->ctx;
    form_walk w = {0};
    int depth = 0;
    fz_var(w);
    fz_var(depth);
    fz_try(ctx) {
        pdf_document *pdf = pdf_specifics(ctx, j->fdoc);
        pdf_obj *page = pdf ? pdf_lookup_page_obj(ctx, pdf, pno) : NULL;
        if (page) {
            w.seen = pdf_new_mark_bits(ctx, pdf);
            depth = resource_depth(ctx, &w, pdf_dict_get_inheritable(ctx, page, PDF_NAME(Resources)), 0, cap);
            pdf_obj *annots = pdf_dict_get(ctx, page, PDF_NAME(Annots));
            for (int a = 0; a < pdf_array_len(ctx, annots) && depth <= cap; a++) {
                pdf_obj *ap =
                    pdf_dict_getl(ctx, pdf_array_get(ctx, annots, a), PDF_NAME(AP), PDF_NAME(N), NULL);
                /* one appearance stream, or a dictionary of them by state */
                int one = pdf_is_stream(ctx, ap), ns = one ? 1 : pdf_dict_len(ctx, ap);
                for (int s = 0; s < ns && depth <= cap; s++) {
                    pdf_obj *form = one ? ap : pdf_dict_get_val(ctx, ap, s);
                    pdf_obj *res = pdf_dict_get(ctx, form, PDF_NAME(Resources));
                    if (pdf_mark_bits_set(ctx, w.seen, res)) continue;
                    int d = resource_depth(ctx, &w, res, 1, cap);
                    if (d > depth) depth = d;
                }
            }
        }
    }
    fz_always(ctx) {
        pdf_drop_mark_bits(ctx, w.seen);
        fz_free(ctx, w.stack);
    }
    fz_catch(ctx) depth = 0;
    return depth;
}

static int read_page(job *j, int pno) {
    fz_context *ctx = j->ctx;
    fz_page *page = NULL;
    fz_stext_page *tp = NULL;
    int failed = 0;
    fz_var(failed);
    fz_var(page);
    fz_var(tp);
    if (page_form_depth(j, pno, MAX_FORM_DEPTH) > MAX_FORM_DEPTH) {
        snprintf(j->why, sizeof j->why, "page %d: form XObjects nested more than %d deep", pno + 1,
                 MAX_FORM_DEPTH);
        return job_fail(j, SL_EBADINPUT, "cannot read the PDF's %s", j->why);
    }
    fz_try(ctx) {
        page = fz_load_page(ctx, j->fdoc, pno);
        fz_stext_options opts = {.flags = FZ_STEXT_MEDIABOX_CLIP};
        tp = fz_new_stext_page_from_page(ctx, page, &opts);
        emit_page(j, pno, tp);
    }
    fz_always(ctx) {
        fz_drop_stext_page(ctx, tp);
        fz_drop_page(ctx, page);
    }
    fz_catch(ctx) {
        snprintf(j->why, sizeof j->why, "page %d: %s", pno + 1, fz_caught_message(ctx));
        failed = 1;
    }
    if (failed) return job_fail(j, SL_EBADINPUT, "cannot read the PDF's %s", j->why);
    return j->rc;
}

static int parse(sl_call *call, sl_doc *doc) {
    slmu_thread *t = sl_call_thread_state(call);
    if (!t) return sl_fail(call, SL_EFATAL, "parse-pdf called without its per-thread mupdf context");
    job j = {.call = call, .doc = doc, .ctx = t->ctx, .st = sl_call_state(call)};
    size_t len;
    const char *data = sl_doc_data(doc, &len);
    t->uri = sl_doc_uri(doc);
    if (!check_bytes(&j, data, len) && !open_doc(&j, data, len) && !authenticate(&j) &&
        !check_page_tree(&j) && !count_pages(&j)) {
        read_metadata(&j);
        if (j.st->outline && !j.rc) read_outline(&j);
        for (int p = 0; p < j.npages && !j.rc; p++) read_page(&j, p);
    }
    if (j.fdoc) fz_drop_document(j.ctx, j.fdoc);
    fz_flush_warnings(j.ctx);
    t->uri = NULL;
    for (size_t h = 0; h < j.nheads; h++) free(j.heads[h].title);
    free(j.heads);
    free(j.text.p);
    return j.rc;
}

static const char *const media_types[] = {"application/pdf", NULL};

static const sl_plugin desc = {
    SL_PLUGIN_HEADER,
    .name = "parse-pdf",
    .version = "1.0.0",
    .summary = "PDF text per page with positions, metadata and outline headings (mupdf)",
    .role = SL_ROLE_PARSER,
    .bottleneck = SL_CPU,
    .options = options,
    .config_size = sizeof(pp_config),
    .media_types = media_types,
    .init = init,
    .fini = fini,
    .thread_init = thread_init,
    .thread_fini = thread_fini,
    .parse = parse,
};

SL_PLUGIN_EXPORT(desc)
