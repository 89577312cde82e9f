/* html_elements.c - HTML into typed elements through libgumbo (see
 * html_elements.h).
 *
 * gumbo builds an HTML5 tree the way a browser would, repairing whatever the
 * page got wrong. We walk that tree with a stack of our own (never the C
 * stack) and turn it into elements the way parse-markdown turns md4c's
 * events into them: a heading, paragraph, caption or <pre> makes one
 * element; a top-level list, table or block quote is "captured" whole into
 * one element, everything nested inside flattened into its text (items and
 * rows on their own lines). Text that sits directly in a <div> or <body>
 * becomes a paragraph of its own. Separators inside a capture are written
 * lazily, only when text follows, so empty markup leaves no blank lines.
 *
 * gumbo's own cost grows faster than linearly with nesting depth (50,000
 * nested divs take seconds, 100,000 over a minute, and its tree code
 * recurses), so a cheap pre-scan counts start tags and how many are open at
 * once and refuses input past the bounds before gumbo sees it.
 */
#include "html_elements.h"

#include <errno.h>
#include <gumbo.h>
#include <iconv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "textbuf.h"

#define DEF_MAX_DEPTH 256
#define DEF_MAX_ELEMENTS 1000000
#define DEF_MAX_OUTPUT ((size_t)256 << 20)
#define DEF_MAX_NESTING 20000
#define MAX_INDENT_LEVEL 8

static void say(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static uint32_t line_of(const char *s, size_t off) {
    uint32_t line = 1;
    for (const char *p = s, *end = s + off; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++) line++;
    return line;
}

/* ------------------------------------------------------------------ */
/* charset                                                            */
/* ------------------------------------------------------------------ */

static const char *find_ci(const char *s, size_t n, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(s + i, needle, k) == 0) return s + i;
    return NULL;
}

char *html_sniff_charset(const char *html, size_t len, char *out, size_t outlen) {
    if (!outlen) return out;
    out[0] = '\0';
    const unsigned char *u = (const unsigned char *)html;
    const char *bom = len >= 3 && u[0] == 0xEF && u[1] == 0xBB && u[2] == 0xBF ? "utf-8"
                      : len >= 2 && u[0] == 0xFF && u[1] == 0xFE               ? "utf-16le"
                      : len >= 2 && u[0] == 0xFE && u[1] == 0xFF               ? "utf-16be"
                                                                               : NULL;
    if (bom) {
        snprintf(out, outlen, "%s", bom);
        return out;
    }
    size_t n = len < 4096 ? len : 4096;
    for (const char *p = html, *end = html + n; (p = find_ci(p, (size_t)(end - p), "<meta")) != NULL;) {
        const char *gt = memchr(p, '>', (size_t)(end - p));
        const char *tag_end = gt ? gt : end;
        const char *cs = find_ci(p, (size_t)(tag_end - p), "charset");
        p += 5;
        if (!cs) continue;
        cs += 7;
        while (cs < tag_end && is_ws(*cs)) cs++;
        if (cs >= tag_end || *cs != '=') continue;
        cs++;
        while (cs < tag_end && (is_ws(*cs) || *cs == '"' || *cs == '\'')) cs++;
        size_t k = 0;
        while (cs + k < tag_end && k + 1 < outlen &&
               (is_alpha(cs[k]) || (cs[k] >= '0' && cs[k] <= '9') || cs[k] == '-' || cs[k] == '_' ||
                cs[k] == '.' || cs[k] == ':')) {
            out[k] = (char)((cs[k] >= 'A' && cs[k] <= 'Z') ? cs[k] + 32 : cs[k]);
            k++;
        }
        out[k] = '\0';
        if (k) return out;
    }
    return out;
}

/* windows-1252's 0x80..0x9F; the five holes map to the C1 controls, as
 * the WHATWG encoding standard (and so every browser) reads them. */
static const uint16_t cp1252_high[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

static int put_cp(buf *b, uint32_t cp) {
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    } else {
        u[0] = (char)(0xE0 | (cp >> 12)), u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    }
    return buf_add(b, u, n);
}

static bool is_cp1252(const char *cs) {
    static const char *const names[] = {"windows-1252", "cp1252",     "x-cp1252", "iso-8859-1", "iso8859-1",
                                        "iso_8859-1",   "latin1",     "latin-1",  "l1",         "ascii",
                                        "us-ascii",     "iso-ir-100", "ibm819",   "cp819",      NULL};
    for (size_t i = 0; names[i]; i++)
        if (strcmp(cs, names[i]) == 0) return true;
    return false;
}

static int from_cp1252(const char *s, size_t len, buf *out) {
    if (buf_reserve(out, len + len / 2)) return SL_ENOMEM;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp = c >= 0x80 && c < 0xA0 ? cp1252_high[c - 0x80] : c;
        if (put_cp(out, cp)) return SL_ENOMEM;
    }
    return 0;
}

static int from_iconv(const char *cs, const char *s, size_t len, buf *out, char *err, size_t errlen) {
    iconv_t cd = iconv_open("UTF-8", cs);
    if (cd == (iconv_t)-1) {
        say(err, errlen, "unknown charset '%s'", cs);
        return SL_EBADINPUT;
    }
    char *in = (char *)s;
    size_t left = len;
    int rc = 0;
    while (left) {
        if (buf_reserve(out, left * 2 + 16)) {
            rc = SL_ENOMEM;
            break;
        }
        char *o = out->p + out->len;
        size_t room = out->cap - out->len - 1;
        size_t r = iconv(cd, &in, &left, &o, &room);
        out->len = (size_t)(o - out->p);
        if (r != (size_t)-1) break;
        if (errno == E2BIG) continue;
        say(err, errlen, "bytes that are not %s at byte %zu (line %u)", cs, (size_t)(in - s),
            line_of(s, (size_t)(in - s)));
        rc = SL_EBADINPUT;
        break;
    }
    iconv_close(cd);
    if (out->p) out->p[out->len] = '\0';
    return rc;
}

int html_to_utf8(const char *html, size_t len, const char *fallback, const char **out, size_t *outlen,
                 char **owned, char *err, size_t errlen) {
    *out = html;
    *outlen = len;
    *owned = NULL;
    char cs[64];
    html_sniff_charset(html, len, cs, sizeof cs);
    bool utf16 = strncmp(cs, "utf-16", 6) == 0;
    if (!utf16) {
        const char *nul = memchr(html, '\0', len);
        if (nul) {
            say(err, errlen, "binary data: NUL byte at offset %zu", (size_t)(nul - html));
            return SL_EBADINPUT;
        }
        size_t bad;
        /* Valid UTF-8 is read as UTF-8 whatever it declares: pages that say
         * latin-1 and hold UTF-8 are common, the reverse cannot validate. */
        if (sl_utf8_valid(html, len, &bad)) {
            if (len >= 3 && memcmp(html, "\xEF\xBB\xBF", 3) == 0) *out = html + 3, *outlen = len - 3;
            return 0;
        }
        if (!cs[0] || strcmp(cs, "utf-8") == 0 || strcmp(cs, "utf8") == 0) {
            if (cs[0] || !fallback) {
                say(err, errlen, "invalid UTF-8 at byte %zu (line %u)%s", bad, line_of(html, bad),
                    cs[0] ? "" : "; no charset declared (add <meta charset=...>)");
                return SL_EBADINPUT;
            }
            snprintf(cs, sizeof cs, "%s", fallback);
        }
    }
    buf b = {0};
    int rc;
    if (is_cp1252(cs)) {
        rc = from_cp1252(html, len, &b);
    } else {
        size_t skip = utf16 ? 2 : 0;
        rc = from_iconv(strcmp(cs, "utf-16le") == 0   ? "UTF-16LE"
                        : strcmp(cs, "utf-16be") == 0 ? "UTF-16BE"
                                                      : cs,
                        html + skip, len - skip, &b, err, errlen);
    }
    if (!rc && b.len && memchr(b.p, '\0', b.len)) {
        say(err, errlen, "binary data: a NUL character after decoding %s", cs);
        rc = SL_EBADINPUT;
    }
    if (!rc && !sl_utf8_valid(b.p ? b.p : "", b.len, NULL)) {
        say(err, errlen, "decoding %s gave invalid UTF-8", cs);
        rc = SL_EBADINPUT;
    }
    if (rc) {
        if (rc == SL_ENOMEM) say(err, errlen, "out of memory decoding %s", cs);
        free(b.p);
        return rc;
    }
    if (!b.p) b.p = calloc(1, 1);
    if (!b.p) return SL_ENOMEM;
    *out = *owned = b.p;
    *outlen = b.len;
    return 0;
}

/* ------------------------------------------------------------------ */
/* pre-scan: start tags and nesting, before gumbo                     */
/* ------------------------------------------------------------------ */

/* Elements that never hold children, or whose end tag is often left out
 * (counting those as open would make ordinary pages look deep). */
static bool never_open(const char *name, size_t n) {
    static const char *const names[] = {
        "area",  "base",   "br",       "col",   "embed",  "hr",       "img",      "input", "link", "meta",
        "param", "source", "track",    "wbr",   "p",      "li",       "dt",       "dd",    "tr",   "td",
        "th",    "option", "optgroup", "thead", "tbody",  "tfoot",    "colgroup", "rb",    "rt",   "rp",
        "html",  "head",   "body",     "frame", "keygen", "basefont", "isindex",  NULL};
    for (size_t i = 0; names[i]; i++)
        if (strlen(names[i]) == n && strncasecmp(names[i], name, n) == 0) return true;
    return false;
}

static int prescan(const char *s, size_t len, const html_opts *o, char *err, size_t errlen) {
    size_t tags = 0, open = 0;
    for (const char *p = s, *end = s + len; (p = memchr(p, '<', (size_t)(end - p))) != NULL;) {
        p++;
        if (p >= end) break;
        if (*p == '!') {
            if (end - p >= 3 && p[1] == '-' && p[2] == '-') {
                const char *c = find_ci(p + 3, (size_t)(end - p - 3), "-->");
                if (!c) break;
                p = c + 3;
            }
            continue;
        }
        bool close = *p == '/';
        const char *name = p + close;
        size_t n = 0;
        while (name + n < end && (is_alpha(name[n]) || (n && name[n] >= '0' && name[n] <= '9'))) n++;
        if (!n) continue;
        const char *gt = memchr(name + n, '>', (size_t)(end - name - n));
        if (close) {
            if (open && !never_open(name, n)) open--;
            continue;
        }
        if (++tags > o->max_elements) {
            say(err, errlen, "more than %zu HTML elements (at byte %zu, line %u)", o->max_elements,
                (size_t)(p - 1 - s), line_of(s, (size_t)(p - 1 - s)));
            return SL_EBADINPUT;
        }
        bool self_closing = gt && gt > name && gt[-1] == '/';
        if (!never_open(name, n) && !self_closing && ++open > o->max_nesting) {
            say(err, errlen, "HTML nested deeper than %zu elements (at byte %zu, line %u)", o->max_nesting,
                (size_t)(p - 1 - s), line_of(s, (size_t)(p - 1 - s)));
            return SL_EBADINPUT;
        }
        /* raw text: a '<' inside a script or style is not a tag */
        if ((n == 6 && strncasecmp(name, "script", 6) == 0) ||
            (n == 5 && strncasecmp(name, "style", 5) == 0)) {
            const char *c = gt ? find_ci(gt, (size_t)(end - gt), n == 6 ? "</script" : "</style") : NULL;
            if (!c) break;
            p = c;
            continue;
        }
        if (!gt) break;
        p = gt + 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* the walk                                                           */
/* ------------------------------------------------------------------ */

typedef enum kind {
    K_INLINE,
    K_DROP,
    K_CONTAINER, /* a block with no element of its own: div, section, body */
    K_SPACE,     /* a block flattened past max_depth: a space */
    K_HEADING,
    K_PARA,
    K_CAPTION,
    K_PRE,
    K_LIST,
    K_TABLE,
    K_QUOTE,
    K_LI,
    K_DT,
    K_DD,
    K_TR,
    K_CELL,
    K_BR,
    K_IMG,
} kind;

typedef enum pend { P_NONE, P_BLOCK, P_ITEM } pend;

typedef struct frame {
    GumboNode *node;
    unsigned next;
    unsigned char pass; /* tables: 0 caption and thead, 1 the body, 2 tfoot */
    unsigned char kind;
    bool entered;
} frame;

typedef struct list_level {
    bool ordered;
    long next;
} list_level;

typedef struct walker {
    sl_doc *doc;
    const html_opts *o;
    char *err;
    size_t errlen;
    int rc;

    /* the element being built */
    buf text;
    sl_elem_type type; /* 0: none open */
    int level;
    char lang[64];
    GumboSourcePosition pos;
    bool have_pos;
    bool pend_space;
    int in_pre;

    /* a capture: a list, table or quote collected whole */
    size_t cap_depth; /* stack depth of its element; 0: none */
    sl_elem_type cap_type;
    list_level *lists;
    size_t nlists, clists;
    pend pending;
    char marker[32];
    int tdepth; /* tables open inside the capture */
    long rows, cells;
    int in_cell;
    buf caption; /* a captured table's <caption>, an element of its own */
    bool in_caption;
    GumboSourcePosition cap_pos;

    size_t out_bytes;
    bool title_seen;
    int boiler_depth; /* sectioning elements open: a header or footer inside one is content */
} walker;

static bool capturing(const walker *w) { return w->cap_depth != 0; }

static int fail(walker *w, int rc, const char *fmt, ...) {
    if (w->rc) return w->rc;
    if (w->err && w->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->err, w->errlen, fmt, ap);
        va_end(ap);
    }
    return w->rc = rc;
}

static int nomem(walker *w) { return fail(w, SL_ENOMEM, "out of memory"); }

static const char *attr(const GumboNode *n, const char *name) {
    const GumboAttribute *a = gumbo_get_attribute(&n->v.element.attributes, name);
    return a ? a->value : NULL;
}

static bool has_class(const GumboNode *n, const char *cls) {
    const char *c = attr(n, "class");
    size_t k = strlen(cls);
    while (c && *c) {
        while (is_ws(*c)) c++;
        size_t m = 0;
        while (c[m] && !is_ws(c[m])) m++;
        if (m == k && strncasecmp(c, cls, k) == 0) return true;
        c += m;
    }
    return false;
}

/* hidden, aria-hidden="true", or an inline style that hides it */
static bool is_hidden(const GumboNode *n) {
    if (attr(n, "hidden")) return true;
    const char *a = attr(n, "aria-hidden");
    if (a && strcasecmp(a, "true") == 0) return true;
    const char *st = attr(n, "style");
    if (!st) return false;
    char squeezed[256];
    size_t k = 0;
    for (const char *p = st; *p && k + 1 < sizeof squeezed; p++)
        if (!is_ws(*p)) squeezed[k++] = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    squeezed[k] = '\0';
    return strstr(squeezed, "display:none") || strstr(squeezed, "visibility:hidden");
}

static bool is_boilerplate_role(const char *role) {
    return role && (strcasecmp(role, "navigation") == 0 || strcasecmp(role, "banner") == 0 ||
                    strcasecmp(role, "contentinfo") == 0 || strcasecmp(role, "complementary") == 0 ||
                    strcasecmp(role, "search") == 0);
}

static kind classify(walker *w, const GumboNode *n, size_t depth) {
    if (n->type == GUMBO_NODE_TEMPLATE) return K_DROP;
    if (n->type != GUMBO_NODE_ELEMENT) return K_INLINE;
    GumboTag tag = n->v.element.tag;
    if (n->v.element.tag_namespace != GUMBO_NAMESPACE_HTML) return K_DROP; /* svg, math */
    switch (tag) {
    case GUMBO_TAG_HEAD:
    case GUMBO_TAG_SCRIPT:
    case GUMBO_TAG_STYLE:
    case GUMBO_TAG_NOSCRIPT:
    case GUMBO_TAG_TEMPLATE:
    case GUMBO_TAG_FORM:
    case GUMBO_TAG_BUTTON:
    case GUMBO_TAG_INPUT:
    case GUMBO_TAG_SELECT:
    case GUMBO_TAG_TEXTAREA:
    case GUMBO_TAG_IFRAME:
    case GUMBO_TAG_OBJECT:
    case GUMBO_TAG_EMBED:
    case GUMBO_TAG_CANVAS:
    case GUMBO_TAG_AUDIO:
    case GUMBO_TAG_VIDEO:
    case GUMBO_TAG_MAP:
    case GUMBO_TAG_NOFRAMES:
    case GUMBO_TAG_FRAMESET:
    case GUMBO_TAG_TITLE:
    case GUMBO_TAG_DATALIST:
    case GUMBO_TAG_OUTPUT:
    case GUMBO_TAG_PROGRESS:
    case GUMBO_TAG_METER:
    case GUMBO_TAG_APPLET:
    case GUMBO_TAG_NOEMBED: return K_DROP;
    default: break;
    }
    if (is_hidden(n)) return K_DROP;
    if (!w->o->keep_boilerplate) {
        if (tag == GUMBO_TAG_NAV || tag == GUMBO_TAG_ASIDE || is_boilerplate_role(attr(n, "role")) ||
            has_class(n, "navheader") || has_class(n, "navfooter")) /* DocBook's page navigation */
            return K_DROP;
        if ((tag == GUMBO_TAG_HEADER || tag == GUMBO_TAG_FOOTER) && !w->boiler_depth) {
            /* pandoc's title block is the document's own title, not site chrome */
            const char *id = attr(n, "id");
            if (!id || strcmp(id, "title-block-header") != 0) return K_DROP;
        }
    }
    if (tag == GUMBO_TAG_BR) return K_BR;
    if (tag == GUMBO_TAG_IMG) return K_IMG;
    kind k;
    switch (tag) {
    case GUMBO_TAG_H1:
    case GUMBO_TAG_H2:
    case GUMBO_TAG_H3:
    case GUMBO_TAG_H4:
    case GUMBO_TAG_H5:
    case GUMBO_TAG_H6: k = K_HEADING; break;
    case GUMBO_TAG_P:
    case GUMBO_TAG_ADDRESS:
    case GUMBO_TAG_SUMMARY:
    case GUMBO_TAG_LEGEND: k = K_PARA; break;
    case GUMBO_TAG_CAPTION:
    case GUMBO_TAG_FIGCAPTION: k = K_CAPTION; break;
    case GUMBO_TAG_PRE:
    case GUMBO_TAG_LISTING:
    case GUMBO_TAG_XMP:
    case GUMBO_TAG_PLAINTEXT: k = K_PRE; break;
    case GUMBO_TAG_UL:
    case GUMBO_TAG_OL:
    case GUMBO_TAG_MENU:
    case GUMBO_TAG_DIR:
    case GUMBO_TAG_DL: k = K_LIST; break;
    case GUMBO_TAG_TABLE: {
        const char *role = attr(n, "role");
        k = role && (strcasecmp(role, "presentation") == 0 || strcasecmp(role, "none") == 0) ? K_CONTAINER
                                                                                             : K_TABLE;
        break;
    }
    case GUMBO_TAG_BLOCKQUOTE: k = K_QUOTE; break;
    case GUMBO_TAG_LI: k = K_LI; break;
    case GUMBO_TAG_DT: k = K_DT; break;
    case GUMBO_TAG_DD: k = K_DD; break;
    case GUMBO_TAG_TR: k = K_TR; break;
    case GUMBO_TAG_TD:
    case GUMBO_TAG_TH: k = K_CELL; break;
    case GUMBO_TAG_HTML:
    case GUMBO_TAG_BODY:
    case GUMBO_TAG_DIV:
    case GUMBO_TAG_SECTION:
    case GUMBO_TAG_ARTICLE:
    case GUMBO_TAG_MAIN:
    case GUMBO_TAG_HEADER:
    case GUMBO_TAG_FOOTER:
    case GUMBO_TAG_NAV:
    case GUMBO_TAG_ASIDE:
    case GUMBO_TAG_FIGURE:
    case GUMBO_TAG_CENTER:
    case GUMBO_TAG_DETAILS:
    case GUMBO_TAG_FIELDSET:
    case GUMBO_TAG_HGROUP:
    case GUMBO_TAG_HR:
    case GUMBO_TAG_THEAD:
    case GUMBO_TAG_TBODY:
    case GUMBO_TAG_TFOOT:
    case GUMBO_TAG_COLGROUP:
    case GUMBO_TAG_OPTGROUP:
    case GUMBO_TAG_OPTION: k = K_CONTAINER; break;
    default: return K_INLINE;
    }
    if (depth > w->o->max_depth) return K_SPACE;
    return k;
}

/* --- building text --- */

static buf *target(walker *w) { return w->in_caption ? &w->caption : &w->text; }

static int indent(buf *b, size_t levels) {
    if (levels > MAX_INDENT_LEVEL) levels = MAX_INDENT_LEVEL;
    return buf_fill(b, ' ', 2 * levels);
}

static char last_char(const buf *b) { return b->len ? b->p[b->len - 1] : '\0'; }

/* Writes what the capture owes before the next text: an item's marker, a
 * block's separator, a collapsed space. */
static int flush_pending(walker *w) {
    buf *b = target(w);
    int bad = 0;
    if (capturing(w) && !w->in_caption) {
        if (w->pending == P_ITEM) {
            if (b->len && last_char(b) != '\n') bad |= buf_adds(b, "\n");
            bad |= indent(b, w->nlists ? w->nlists - 1 : 0);
            bad |= buf_adds(b, w->marker);
            w->pend_space = false;
        } else if (w->pending == P_BLOCK && b->len) {
            if (w->in_cell)
                w->pend_space = true;
            else if (w->nlists || w->tdepth)
                bad |= (last_char(b) != '\n' ? buf_adds(b, "\n") : 0) | indent(b, w->nlists);
            else
                bad |= buf_adds(b, "\n\n");
            if (!w->in_cell) w->pend_space = false;
        }
        w->pending = P_NONE;
    }
    if (w->pend_space) {
        char c = last_char(b);
        if (b->len && c != ' ' && c != '\n' && !(c == '|' && b->len >= 2 && b->p[b->len - 2] == ' '))
            bad |= buf_adds(b, " ");
        w->pend_space = false;
    }
    return bad ? -1 : 0;
}

static void open_element(walker *w, sl_elem_type type, const GumboSourcePosition *pos) {
    w->type = type;
    w->level = 0;
    w->lang[0] = '\0';
    w->text.len = 0;
    w->pend_space = false;
    w->have_pos = pos != NULL;
    if (pos) w->pos = *pos;
}

static int add_element(walker *w, sl_elem_type type, const char *s, size_t n, const GumboSourcePosition *pos,
                       int level, const char *lang) {
    if (type == SL_EL_CODE) {
        while (n && (s[0] == '\n' || s[0] == '\r')) s++, n--;
        while (n && is_ws(s[n - 1])) n--;
    } else {
        while (n && is_ws(s[0])) s++, n--;
        while (n && is_ws(s[n - 1])) n--;
    }
    if (!n) return 0;
    w->out_bytes += n;
    if (w->out_bytes > w->o->max_output)
        return fail(w, SL_EBADINPUT, "more than %zu bytes of text (at line %u)", w->o->max_output,
                    pos ? pos->line : 0);
    sl_doc *doc = w->doc;
    int i = sl_doc_add_element(doc, type, s, n);
    if (i < 0) return fail(w, i, "%s adding an element", sl_strerror(i));
    size_t idx = (size_t)i;
    int rc = 0;
    if (w->o->page) rc = sl_elem_set_page(doc, idx, w->o->page);
    if (!rc && type == SL_EL_HEADING) rc = sl_elem_set_level(doc, idx, level);
    if (!rc && type == SL_EL_CODE && lang && lang[0]) rc = sl_elem_set_attr(doc, idx, "lang", lang);
    if (!rc && pos && pos->line)
        rc = sl_elem_set_source(doc, idx, w->o->offset_base + pos->offset, w->o->line_base + pos->line);
    if (!rc && type == SL_EL_HEADING && level == 1 && !w->title_seen && !w->o->no_metadata) {
        w->title_seen = true;
        if (!sl_doc_meta_get(doc, "title")) {
            char *t = sl_doc_strndup(doc, s, n);
            rc = t ? sl_doc_meta_set(doc, "title", t) : SL_ENOMEM;
        }
    }
    if (rc) return fail(w, rc, "%s setting an element's fields", sl_strerror(rc));
    return 0;
}

static int close_element(walker *w) {
    sl_elem_type type = w->type;
    w->type = (sl_elem_type)0;
    w->pend_space = false;
    if (!type) return 0;
    int rc = add_element(w, type, w->text.p ? w->text.p : "", w->text.len, w->have_pos ? &w->pos : NULL,
                         w->level, w->lang);
    w->text.len = 0;
    return rc;
}

static int add_text(walker *w, const char *s, size_t n, const GumboSourcePosition *pos) {
    if (!w->type && !capturing(w)) {
        size_t k = 0;
        while (k < n && is_ws(s[k])) k++;
        if (k == n) return 0; /* whitespace between blocks */
        open_element(w, SL_EL_PARAGRAPH, pos);
    }
    buf *b = target(w);
    if (w->in_pre) {
        if (flush_pending(w) || buf_add(b, s, n)) return nomem(w);
    } else {
        size_t i = 0;
        while (i < n) {
            if (is_ws(s[i])) {
                w->pend_space = true;
                i++;
                continue;
            }
            size_t j = i;
            while (j < n && !is_ws(s[j])) j++;
            if (flush_pending(w) || buf_add(b, s + i, j - i)) return nomem(w);
            i = j;
        }
    }
    if (b->len > w->o->max_output)
        return fail(w, SL_EBADINPUT, "more than %zu bytes of text (at line %u)", w->o->max_output,
                    pos ? pos->line : 0);
    return 0;
}

/* A block starts or ends: outside a capture the open element is done;
 * inside one, a separator is owed if text follows. */
static int boundary(walker *w) {
    if (!capturing(w)) return close_element(w);
    if (w->pending == P_NONE) w->pending = P_BLOCK;
    return 0;
}

static void code_lang(walker *w, const GumboNode *n) {
    const GumboNode *code = NULL;
    const GumboVector *kids = &n->v.element.children;
    for (unsigned i = 0; i < kids->length; i++) {
        const GumboNode *c = kids->data[i];
        if (c->type == GUMBO_NODE_ELEMENT && c->v.element.tag == GUMBO_TAG_CODE) {
            code = c;
            break;
        }
    }
    const GumboNode *try[2] = {n, code};
    for (int t = 0; t < 2; t++) {
        const char *cls = try[t] ? attr(try[t], "class") : NULL;
        const char *other = NULL;
        size_t other_len = 0;
        while (cls && *cls) {
            while (is_ws(*cls)) cls++;
            size_t m = 0;
            while (cls[m] && !is_ws(cls[m])) m++;
            const char *name = NULL;
            size_t len = 0;
            if (m > 9 && strncasecmp(cls, "language-", 9) == 0) name = cls + 9, len = m - 9;
            if (m > 5 && strncasecmp(cls, "lang-", 5) == 0) name = cls + 5, len = m - 5;
            if (name) {
                snprintf(w->lang, sizeof w->lang, "%.*s", (int)len, name);
                return;
            }
            /* pandoc writes class="sourceCode python" */
            if (m && !other && !(m == 10 && strncmp(cls, "sourceCode", 10) == 0) &&
                !(m == 12 && strncmp(cls, "numberSource", 12) == 0))
                other = cls, other_len = m;
            cls += m;
        }
        if (other && has_class(try[t], "sourceCode")) {
            snprintf(w->lang, sizeof w->lang, "%.*s", (int)other_len, other);
            return;
        }
    }
}

static int start_capture(walker *w, sl_elem_type type, const GumboNode *n, size_t depth) {
    if (close_element(w)) return w->rc;
    open_element(w, type, &n->v.element.start_pos);
    w->cap_depth = depth;
    w->cap_type = type;
    w->pending = P_NONE;
    w->tdepth = 0;
    w->in_cell = 0;
    w->nlists = 0;
    return 0;
}

static int push_list(walker *w, const GumboNode *n) {
    if (w->nlists == w->clists) {
        size_t c = w->clists ? w->clists * 2 : 8;
        list_level *l = realloc(w->lists, c * sizeof *l);
        if (!l) return nomem(w);
        w->lists = l;
        w->clists = c;
    }
    const char *start = attr(n, "start");
    long first = start ? strtol(start, NULL, 10) : 1;
    w->lists[w->nlists++] = (list_level){.ordered = n->v.element.tag == GUMBO_TAG_OL, .next = first};
    return 0;
}

static int enter(walker *w, frame *f, size_t depth) {
    GumboNode *n = f->node;
    const GumboSourcePosition *pos = n->type == GUMBO_NODE_ELEMENT ? &n->v.element.start_pos : NULL;
    GumboTag tag = n->type == GUMBO_NODE_ELEMENT ? n->v.element.tag : GUMBO_TAG_UNKNOWN;
    if (tag == GUMBO_TAG_ARTICLE || tag == GUMBO_TAG_SECTION || tag == GUMBO_TAG_MAIN) w->boiler_depth++;
    switch ((kind)f->kind) {
    case K_INLINE:
    case K_DROP: return 0;
    case K_SPACE: w->pend_space = true; return 0;
    case K_CONTAINER: return boundary(w);
    case K_BR:
        if (w->in_pre) return add_text(w, "\n", 1, pos);
        if (w->in_cell || w->in_caption) {
            w->pend_space = true;
        } else if (capturing(w)) {
            w->pending = P_BLOCK;
        } else if (w->type && w->text.len) {
            w->pend_space = false;
            if (buf_adds(&w->text, "\n")) return nomem(w);
        }
        return 0;
    case K_IMG: {
        const char *alt = attr(n, "alt");
        if (!alt || !*alt) return 0;
        w->pend_space = true;
        int rc = add_text(w, alt, strlen(alt), pos);
        w->pend_space = true;
        return rc;
    }
    case K_HEADING:
    case K_PARA:
    case K_CAPTION:
    case K_PRE:
        if (f->kind == K_PRE) w->in_pre++;
        if (capturing(w)) {
            if (f->kind == K_CAPTION && w->cap_type == SL_EL_TABLE && w->tdepth == 1 && !w->in_cell &&
                !w->in_caption) {
                w->in_caption = true;
                w->caption.len = 0;
                w->cap_pos = *pos;
                return 0;
            }
            return boundary(w);
        }
        if (close_element(w)) return w->rc;
        open_element(w,
                     f->kind == K_HEADING   ? SL_EL_HEADING
                     : f->kind == K_PARA    ? SL_EL_PARAGRAPH
                     : f->kind == K_CAPTION ? SL_EL_CAPTION
                                            : SL_EL_CODE,
                     pos);
        if (f->kind == K_HEADING) w->level = 1 + (int)(tag - GUMBO_TAG_H1);
        if (f->kind == K_PRE) code_lang(w, n);
        return 0;
    case K_LIST:
        if (!capturing(w)) {
            if (start_capture(w, SL_EL_LIST, n, depth)) return w->rc;
        } else {
            boundary(w);
        }
        return w->in_cell ? 0 : push_list(w, n);
    case K_QUOTE:
        if (!capturing(w)) return start_capture(w, SL_EL_QUOTE, n, depth);
        return boundary(w);
    case K_TABLE:
        if (!capturing(w)) {
            if (start_capture(w, SL_EL_TABLE, n, depth)) return w->rc;
        } else {
            boundary(w);
        }
        if (++w->tdepth == 1) w->rows = 0;
        return 0;
    case K_LI:
    case K_DT:
        if (!capturing(w) || !w->nlists || w->in_cell) return boundary(w);
        {
            list_level *l = &w->lists[w->nlists - 1];
            if (f->kind == K_DT)
                w->marker[0] = '\0';
            else if (l->ordered)
                snprintf(w->marker, sizeof w->marker, "%ld. ", l->next++);
            else
                snprintf(w->marker, sizeof w->marker, "- ");
            w->pending = P_ITEM;
        }
        return 0;
    case K_DD: return boundary(w);
    case K_TR:
        if (w->tdepth == 1 && !w->in_cell) w->cells = 0;
        return boundary(w);
    case K_CELL:
        if (w->tdepth != 1 || w->in_cell) {
            w->pend_space = true;
            return 0;
        }
        if (w->in_caption) return 0;
        {
            buf *b = &w->text;
            int bad = 0;
            if (!w->cells && w->rows) {
                bad |= buf_adds(b, "\n");
                if (w->nlists) bad |= indent(b, w->nlists);
            } else if (!w->cells && w->cap_type != SL_EL_TABLE) {
                bad |= flush_pending(w); /* a table inside a list or quote starts on its own line */
                if (b->len && last_char(b) != '\n') bad |= buf_adds(b, "\n") | indent(b, w->nlists);
            } else if (w->cells) {
                bad |= buf_adds(b, " | ");
            }
            if (bad) return nomem(w);
            if (!w->cells++) w->rows++;
            w->pending = P_NONE;
            w->pend_space = false;
            w->in_cell++;
        }
        return 0;
    }
    return 0;
}

static int leave(walker *w, frame *f, size_t depth) {
    GumboNode *n = f->node;
    GumboTag tag = n->type == GUMBO_NODE_ELEMENT ? n->v.element.tag : GUMBO_TAG_UNKNOWN;
    if (tag == GUMBO_TAG_ARTICLE || tag == GUMBO_TAG_SECTION || tag == GUMBO_TAG_MAIN) w->boiler_depth--;
    switch ((kind)f->kind) {
    case K_HEADING:
    case K_PARA:
    case K_CAPTION:
    case K_PRE:
        if (f->kind == K_PRE) w->in_pre--;
        if (capturing(w)) {
            if (f->kind == K_CAPTION && w->in_caption && w->tdepth == 1 && !w->in_cell) {
                w->in_caption = false;
                w->pend_space = false;
                return add_element(w, SL_EL_CAPTION, w->caption.p ? w->caption.p : "", w->caption.len,
                                   &w->cap_pos, 0, NULL);
            }
            return boundary(w);
        }
        return close_element(w);
    case K_CONTAINER:
    case K_LI:
    case K_DT:
    case K_DD:
    case K_TR: return boundary(w);
    case K_SPACE: w->pend_space = true; return 0;
    case K_CELL:
        if (w->tdepth == 1 && w->in_cell == 1 && !w->in_caption) {
            w->in_cell = 0;
            w->pend_space = false;
        } else {
            w->pend_space = true;
        }
        return 0;
    case K_LIST:
        if (!w->in_cell && w->nlists) w->nlists--;
        break;
    case K_TABLE:
        if (w->tdepth) w->tdepth--;
        break;
    case K_QUOTE: break;
    default: return 0;
    }
    /* a list, table or quote ends */
    if (w->cap_depth == depth) {
        w->cap_depth = 0;
        w->pending = P_NONE;
        w->in_caption = false;
        return close_element(w);
    }
    return boundary(w);
}

/* The next child to visit; tables give caption and thead first, tfoot last,
 * so the header row leads whatever order the source had. */
static GumboNode *next_child(frame *f) {
    GumboNode *n = f->node;
    const GumboVector *kids =
        n->type == GUMBO_NODE_DOCUMENT ? &n->v.document.children : &n->v.element.children;
    if (f->kind != K_TABLE) return f->next < kids->length ? kids->data[f->next++] : NULL;
    for (; f->pass < 3; f->pass++, f->next = 0) {
        while (f->next < kids->length) {
            GumboNode *c = kids->data[f->next++];
            GumboTag t = c->type == GUMBO_NODE_ELEMENT ? c->v.element.tag : GUMBO_TAG_UNKNOWN;
            int pass = t == GUMBO_TAG_CAPTION || t == GUMBO_TAG_THEAD ? 0 : t == GUMBO_TAG_TFOOT ? 2 : 1;
            if (pass == f->pass) return c;
        }
    }
    return NULL;
}

static int walk(walker *w, GumboNode *root) {
    size_t cap = 64, nf = 0;
    frame *st = malloc(cap * sizeof *st);
    if (!st) return nomem(w);
    st[nf++] = (frame){.node = root};
    while (nf && !w->rc) {
        frame *f = &st[nf - 1];
        if (!f->entered) {
            f->entered = true;
            f->kind = (unsigned char)classify(w, f->node, nf);
            if (f->kind == K_DROP) {
                nf--;
                continue;
            }
            if (enter(w, f, nf)) break;
        }
        GumboNode *c = next_child(f);
        if (!c) {
            leave(w, f, nf);
            nf--;
            continue;
        }
        switch (c->type) {
        case GUMBO_NODE_TEXT:
        case GUMBO_NODE_CDATA:
        case GUMBO_NODE_WHITESPACE:
            add_text(w, c->v.text.text, strlen(c->v.text.text), &c->v.text.start_pos);
            break;
        case GUMBO_NODE_ELEMENT:
        case GUMBO_NODE_TEMPLATE:
            if (nf == cap) {
                frame *g = realloc(st, 2 * cap * sizeof *st);
                if (!g) {
                    nomem(w);
                    break;
                }
                st = g;
                cap *= 2;
            }
            st[nf++] = (frame){.node = c};
            break;
        default: break; /* comments */
        }
    }
    free(st);
    if (!w->rc) close_element(w);
    return w->rc;
}

/* --- metadata from <head> --- */

static void text_of(const GumboNode *n, buf *b) {
    const GumboVector *kids = &n->v.element.children;
    for (unsigned i = 0; i < kids->length; i++) {
        const GumboNode *c = kids->data[i];
        if (c->type == GUMBO_NODE_TEXT || c->type == GUMBO_NODE_WHITESPACE) buf_adds(b, c->v.text.text);
    }
}

/* Collapses whitespace in place; returns the new length. */
static size_t squeeze(char *s, size_t n) {
    size_t o = 0;
    bool space = false;
    for (size_t i = 0; i < n; i++) {
        if (is_ws(s[i])) {
            space = o > 0;
            continue;
        }
        if (space) s[o++] = ' ';
        space = false;
        s[o++] = s[i];
    }
    return o;
}

static int set_meta(walker *w, const char *key, const char *value, size_t n) {
    if (sl_doc_meta_get(w->doc, key)) return 0;
    char *v = sl_doc_strndup(w->doc, value, n);
    if (!v) return nomem(w);
    size_t k = squeeze(v, n);
    v[k] = '\0';
    if (!k) return 0;
    int rc = sl_doc_meta_set(w->doc, key, v);
    return rc < 0 ? fail(w, rc, "%s setting metadata", sl_strerror(rc)) : 0;
}

static const char *meta_key(const char *name) {
    static const struct {
        const char *name, *key;
    } map[] = {
        {"author", "author"},
        {"dc.creator", "author"},
        {"dcterms.creator", "author"},
        {"article:author", "author"},
        {"description", "description"},
        {"dc.description", "description"},
        {"dcterms.description", "description"},
        {"og:description", "description"},
        {"keywords", "keywords"},
        {"dc.subject", "keywords"},
        {"dcterms.subject", "keywords"},
        {"date", "date"},
        {"dc.date", "date"},
        {"dcterms.date", "date"},
        {"dcterms.issued", "date"},
        {"article:published_time", "date"},
        {"dcterms.created", "created"},
        {"dc.date.created", "created"},
        {"dcterms.modified", "modified"},
        {"dc.date.modified", "modified"},
        {"last-modified", "modified"},
        {"article:modified_time", "modified"},
        {"generator", "generator"},
        {"dc.title", "title"},
        {"dcterms.title", "title"},
        {"og:title", "title"},
        {"dc.language", "lang"},
        {"dcterms.language", "lang"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcasecmp(name, map[i].name) == 0) return map[i].key;
    return NULL;
}

static int read_head(walker *w, GumboNode *html) {
    const char *lang = attr(html, "lang");
    if (!lang) lang = attr(html, "xml:lang");
    if (lang && *lang && set_meta(w, "lang", lang, strlen(lang))) return w->rc;
    const GumboVector *kids = &html->v.element.children;
    for (unsigned i = 0; i < kids->length; i++) {
        GumboNode *head = kids->data[i];
        if (head->type != GUMBO_NODE_ELEMENT || head->v.element.tag != GUMBO_TAG_HEAD) continue;
        const GumboVector *hk = &head->v.element.children;
        /* <title> first: it wins over dc.title and og:title */
        for (int pass = 0; pass < 2; pass++)
            for (unsigned j = 0; j < hk->length; j++) {
                GumboNode *c = hk->data[j];
                if (c->type != GUMBO_NODE_ELEMENT) continue;
                if (pass == 0 && c->v.element.tag == GUMBO_TAG_TITLE) {
                    buf b = {0};
                    text_of(c, &b);
                    int rc = b.len ? set_meta(w, "title", b.p, b.len) : 0;
                    free(b.p);
                    if (rc) return rc;
                } else if (pass == 1 && c->v.element.tag == GUMBO_TAG_META) {
                    const char *name = attr(c, "name");
                    if (!name) name = attr(c, "property");
                    if (!name) name = attr(c, "http-equiv");
                    const char *content = attr(c, "content");
                    const char *key = name && content ? meta_key(name) : NULL;
                    if (key && set_meta(w, key, content, strlen(content))) return w->rc;
                }
            }
    }
    if (sl_doc_meta_get(w->doc, "title")) w->title_seen = true;
    return 0;
}

int html_to_elements(sl_doc *doc, const char *html, size_t len, const html_opts *opts, char *err,
                     size_t errlen) {
    html_opts o = opts ? *opts : (html_opts){0};
    if (!o.max_depth) o.max_depth = DEF_MAX_DEPTH;
    if (!o.max_elements) o.max_elements = DEF_MAX_ELEMENTS;
    if (!o.max_output) o.max_output = DEF_MAX_OUTPUT;
    if (!o.max_nesting) o.max_nesting = DEF_MAX_NESTING;
    if (err && errlen) err[0] = '\0';
    int rc = prescan(html, len, &o, err, errlen);
    if (rc) return rc;

    GumboOptions go = kGumboDefaultOptions;
    go.max_errors = 0; /* we read the tree, not gumbo's error list */
    GumboOutput *out = gumbo_parse_with_options(&go, html, len);
    if (!out) {
        say(err, errlen, "out of memory parsing HTML");
        return SL_ENOMEM;
    }
    walker w = {.doc = doc, .o = &o, .err = err, .errlen = errlen};
    size_t before = sl_doc_element_count(doc);
    if (!o.no_metadata && out->root->type == GUMBO_NODE_ELEMENT) read_head(&w, out->root);
    if (!w.rc) walk(&w, out->root);
    gumbo_destroy_output(&go, out);
    free(w.text.p);
    free(w.caption.p);
    free(w.lists);
    if (!w.rc && sl_doc_element_count(doc) == before) {
        say(err, errlen, "no text");
        w.rc = SL_EBADINPUT;
    }
    return w.rc;
}
