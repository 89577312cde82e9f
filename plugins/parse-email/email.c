/* email.c - parse-email: e-mail messages (.eml) and mailboxes (mbox).
 *
 * GMime 3 reads the message: headers decoded (RFC 2047 words, charsets) to
 * UTF-8, the MIME tree, transfer encodings. What a message becomes:
 *   - metadata: title (Subject), author (From), from, to, cc, date (ISO
 *     8601), message_id;
 *   - elements: the subject as the title; a paragraph naming sender,
 *     recipients and date (so a search for a person finds the mail); then
 *     the body: the first text/plain part as paragraphs split at blank
 *     lines, lines quoted with '>' as quotes; with no text/plain (or with
 *     `prefer = html`), the first text/html part through the HTML walk
 *     (plugins/common/html_elements.c);
 *   - every other part (attachments, inline images, forwarded messages) a
 *     child document (sl_doc_add_child), named by its file name, routed by
 *     its type: the core stores it as PARENT#NAME with a "parent" key.
 * A mailbox is one document whose elements list its messages (subject,
 * sender, date) and whose children are the messages themselves, each an
 * .eml of its own (their bytes cut from the mailbox, not re-serialised):
 * each message is then found, stored and replaced on its own, with its own
 * attachments under it.
 *
 * Bounds: the MIME tree is walked with a stack of our own, at most
 * MAX_PARTS parts and MAX_DEPTH levels deep, else the message fails with
 * the reason; the children's count and bytes are the core's limits
 * ([sluice] max_children, max_child_bytes), past which the document fails.
 */
#include <gmime/gmime.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/sluice.h>

#include "html_elements.h"
#include "textbuf.h"

#define MAX_DEPTH 64
#define MAX_PARTS 100000

typedef struct email_config {
    const char *prefer;
} email_config;

typedef struct email_state {
    bool prefer_html;
} email_state;

static const sl_option options[] = {
    {.name = "prefer",
     .type = SL_OPT_ENUM,
     .def = "text",
     .help = "the body read when a message has both: its text/plain or its text/html alternative",
     .offset = offsetof(email_config, prefer),
     .choices = "text|html"},
    {0},
};

/* GMime counts its own g_mime_init and g_mime_shutdown calls; the lock
 * keeps instances made on different threads from racing them. */
static pthread_mutex_t gmime_lock = PTHREAD_MUTEX_INITIALIZER;

static int email_init(sl_instance *inst, const void *config, void **state) {
    const email_config *cfg = config;
    email_state *st = calloc(1, sizeof *st);
    if (!st) return sl_instance_fail(inst, SL_ENOMEM, "out of memory");
    st->prefer_html = cfg->prefer && strcmp(cfg->prefer, "html") == 0;
    pthread_mutex_lock(&gmime_lock);
    g_mime_init();
    pthread_mutex_unlock(&gmime_lock);
    *state = st;
    return 0;
}

static void email_fini(void *state) {
    free(state);
    pthread_mutex_lock(&gmime_lock);
    g_mime_shutdown();
    pthread_mutex_unlock(&gmime_lock);
}

/* --- the body --- */

static int add(sl_doc *doc, sl_elem_type type, const char *text, size_t len) {
    while (len && (text[len - 1] == ' ' || text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
    while (len && (*text == '\n' || *text == '\r')) text++, len--;
    if (!len) return 0;
    return sl_doc_add_element(doc, type, text, len) < 0 ? SL_ENOMEM : 0;
}

/* text/plain: paragraphs at blank lines; a run of lines starting with '>'
 * is a quote (its markers dropped). */
static int plain_to_elements(sl_doc *doc, const char *text) {
    buf para = {0}, quote = {0};
    int rc = 0;
    const char *p = text;
    while (rc == 0 && *p) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        if (n && p[n - 1] == '\r') n--;
        bool blank = true;
        for (size_t i = 0; i < n && blank; i++) blank = p[i] == ' ' || p[i] == '\t';
        bool quoted = n && p[0] == '>';
        if (blank || quoted) {
            rc = add(doc, SL_EL_PARAGRAPH, para.p ? para.p : "", para.len);
            para.len = 0;
        }
        if (!quoted && quote.len) {
            rc = rc ? rc : add(doc, SL_EL_QUOTE, quote.p, quote.len);
            quote.len = 0;
        }
        if (quoted) {
            const char *q = p;
            size_t m = n;
            while (m && (*q == '>' || *q == ' ')) q++, m--;
            if (buf_add(&quote, q, m) || buf_add(&quote, "\n", 1)) rc = SL_ENOMEM;
        } else if (!blank) {
            if (buf_add(&para, p, n) || buf_add(&para, "\n", 1)) rc = SL_ENOMEM;
        }
        p = eol ? eol + 1 : p + strlen(p);
    }
    if (!rc) rc = add(doc, SL_EL_PARAGRAPH, para.p ? para.p : "", para.len);
    if (!rc) rc = add(doc, SL_EL_QUOTE, quote.p ? quote.p : "", quote.len);
    free(para.p);
    free(quote.p);
    return rc;
}

/* --- headers --- */

static void put_addresses(sl_doc *doc, const char *key, InternetAddressList *list, buf *who) {
    if (!list || internet_address_list_length(list) == 0) return;
    char *s = internet_address_list_to_string(list, NULL, FALSE);
    if (!s) return;
    if (*s) {
        sl_doc_meta_set(doc, key, s);
        char label[16];
        snprintf(label, sizeof label, "%c%s: ", key[0] - 'a' + 'A', key + 1);
        if (buf_add(who, label, strlen(label)) == 0) buf_add(who, s, strlen(s)), buf_add(who, "\n", 1);
    }
    g_free(s);
}

/* Metadata from the headers, and the title and header paragraph. Returns
 * how many of the headers it knows the message has. */
static int headers(sl_doc *doc, GMimeMessage *msg, int *rc) {
    int known = 0;
    buf who = {0};
    const char *subject = g_mime_message_get_subject(msg);
    if (subject && *subject) {
        known++;
        sl_doc_meta_set(doc, "title", subject);
        sl_doc_meta_set(doc, "subject", subject);
        *rc = add(doc, SL_EL_TITLE, subject, strlen(subject));
    }
    InternetAddressList *from = g_mime_message_get_from(msg);
    if (from && internet_address_list_length(from) > 0) {
        known++;
        char *s = internet_address_list_to_string(from, NULL, FALSE);
        if (s && *s) sl_doc_meta_set(doc, "author", s);
        g_free(s);
    }
    put_addresses(doc, "from", from, &who);
    InternetAddressList *to = g_mime_message_get_to(msg), *cc = g_mime_message_get_cc(msg);
    known += (to && internet_address_list_length(to) > 0) + (cc && internet_address_list_length(cc) > 0);
    put_addresses(doc, "to", to, &who);
    put_addresses(doc, "cc", cc, &who);
    GDateTime *date = g_mime_message_get_date(msg);
    if (date) {
        known++;
        char *iso = g_date_time_format_iso8601(date);
        if (iso) {
            sl_doc_meta_set(doc, "date", iso);
            buf_add(&who, "Date: ", 6), buf_add(&who, iso, strlen(iso)), buf_add(&who, "\n", 1);
        }
        g_free(iso);
    }
    const char *id = g_mime_message_get_message_id(msg);
    if (id && *id) {
        known++;
        sl_doc_meta_set(doc, "message_id", id);
    }
    if (!*rc && who.len) *rc = add(doc, SL_EL_PARAGRAPH, who.p, who.len);
    free(who.p);
    return known;
}

/* --- the MIME tree --- */

/* The decoded bytes of a part (transfer encoding undone), in a GByteArray
 * the caller unrefs; NULL when it has none. */
static GByteArray *part_bytes(GMimeObject *obj) {
    GMimeStream *mem = g_mime_stream_mem_new();
    if (GMIME_IS_MESSAGE_PART(obj)) {
        GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
        if (m) g_mime_object_write_to_stream(GMIME_OBJECT(m), NULL, mem);
    } else if (GMIME_IS_PART(obj)) {
        GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(obj));
        if (w) g_mime_data_wrapper_write_to_stream(w, mem);
    }
    /* the stream frees an array it owns, whatever its references: take it */
    g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(mem), FALSE);
    GByteArray *a = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
    g_object_unref(mem);
    return a;
}

/* A name for a part: its file name, else "part-N" with an extension for
 * its type, so the core routes it by name too. */
static void part_name(GMimeObject *obj, const char *type, int n, char *out, size_t cap) {
    const char *fn = GMIME_IS_PART(obj) ? g_mime_part_get_filename(GMIME_PART(obj)) : NULL;
    if (fn && *fn) {
        snprintf(out, cap, "%s", fn);
        return;
    }
    static const struct {
        const char *type, *ext;
    } exts[] = {{"message/rfc822", ".eml"}, {"text/plain", ".txt"}, {"text/html", ".html"},
                {"text/markdown", ".md"},   {"text/csv", ".csv"},   {"application/pdf", ".pdf"},
                {"image/png", ".png"},      {"image/jpeg", ".jpg"}, {"application/json", ".json"}};
    const char *ext = "";
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (g_ascii_strcasecmp(type, exts[i].type) == 0) ext = exts[i].ext;
    snprintf(out, cap, "part-%d%s", n, ext);
}

typedef struct walk {
    GMimeObject *plain, *html; /* the body's candidates */
    int attachments;
    int rc;
    char err[256];
} walk;

static bool is_attachment(GMimeObject *obj) {
    const char *disp = g_mime_object_get_disposition(obj);
    return disp && g_ascii_strcasecmp(disp, "attachment") == 0;
}

/* Walks the tree without recursion: bodies are picked, other leaves become
 * children. */
static void walk_tree(sl_doc *doc, GMimeObject *root, walk *w) {
    GMimeObject *stack[MAX_DEPTH];
    int idx[MAX_DEPTH], depth = 0, parts = 0;
    GMimeObject *obj = root;
    for (;;) {
        if (obj) {
            if (++parts > MAX_PARTS) {
                snprintf(w->err, sizeof w->err, "more than %d MIME parts", MAX_PARTS);
                w->rc = SL_EBADINPUT;
                return;
            }
            if (GMIME_IS_MULTIPART(obj)) {
                if (depth >= MAX_DEPTH) {
                    snprintf(w->err, sizeof w->err, "MIME parts nested more than %d deep", MAX_DEPTH);
                    w->rc = SL_EBADINPUT;
                    return;
                }
                stack[depth] = obj;
                idx[depth++] = 0;
            } else {
                GMimeContentType *ct = g_mime_object_get_content_type(obj);
                char *type =
                    ct ? g_mime_content_type_get_mime_type(ct) : g_strdup("application/octet-stream");
                bool attached = is_attachment(obj) || GMIME_IS_MESSAGE_PART(obj);
                bool named = GMIME_IS_PART(obj) && g_mime_part_get_filename(GMIME_PART(obj));
                if (!attached && !named && GMIME_IS_TEXT_PART(obj) && ct &&
                    g_mime_content_type_is_type(ct, "text", "plain") && !w->plain) {
                    w->plain = obj;
                } else if (!attached && !named && GMIME_IS_TEXT_PART(obj) && ct &&
                           g_mime_content_type_is_type(ct, "text", "html") && !w->html) {
                    w->html = obj;
                } else {
                    GByteArray *bytes = part_bytes(obj);
                    if (bytes && bytes->len) {
                        char name[256];
                        part_name(obj, type, ++w->attachments, name, sizeof name);
                        /* octet-stream says nothing: the core looks at the name and the bytes */
                        const char *given =
                            g_ascii_strcasecmp(type, "application/octet-stream") ? type : NULL;
                        int rc = sl_doc_add_child(doc, name, given, bytes->data, bytes->len);
                        if (rc < 0) {
                            snprintf(w->err, sizeof w->err, "attachment '%.100s' could not be kept", name);
                            w->rc = rc;
                        }
                    }
                    if (bytes) g_byte_array_free(bytes, TRUE);
                }
                g_free(type);
                if (w->rc) return;
            }
        }
        /* the next sibling, climbing as lists end */
        obj = NULL;
        while (depth > 0 && !obj) {
            GMimeMultipart *mp = GMIME_MULTIPART(stack[depth - 1]);
            if (idx[depth - 1] < g_mime_multipart_get_count(mp))
                obj = g_mime_multipart_get_part(mp, idx[depth - 1]++);
            else
                depth--;
        }
        if (!obj) return;
    }
}

static int body(sl_call *call, sl_doc *doc, const email_state *st, walk *w) {
    GMimeObject *pick = w->plain && !(st->prefer_html && w->html) ? w->plain : w->html;
    if (!pick) return 0;
    char *text = g_mime_text_part_get_text(GMIME_TEXT_PART(pick)); /* UTF-8, whatever the charset */
    if (!text) return 0;
    int rc;
    if (pick == w->plain) {
        rc = plain_to_elements(doc, text);
    } else {
        html_opts o = {.no_metadata = true};
        char err[256] = "";
        rc = html_to_elements(doc, text, strlen(text), &o, err, sizeof err);
        if (rc == SL_EBADINPUT && strstr(err, "no text")) rc = 0; /* an empty HTML body: the headers remain */
        if (rc) rc = sl_fail(call, rc, "text/html body: %s", err);
    }
    g_free(text);
    return rc;
}

static int parse_message(sl_call *call, sl_doc *doc, const email_state *st, const char *data, size_t len) {
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(data, len);
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
    g_object_unref(parser);
    g_object_unref(stream);
    if (!msg) return sl_fail(call, SL_EBADINPUT, "not an e-mail message: GMime found no message in it");
    int rc = 0;
    int known = headers(doc, msg, &rc);
    walk w = {0};
    GMimeObject *root = g_mime_message_get_mime_part(msg);
    if (!rc && !known && !root) {
        g_object_unref(msg);
        return sl_fail(call, SL_EBADINPUT, "not an e-mail message: no headers (From, To, Subject, Date)");
    }
    if (!rc && root) walk_tree(doc, root, &w);
    if (!rc && w.rc) rc = sl_fail(call, w.rc, "%s", w.err);
    if (!rc) rc = body(call, doc, st, &w);
    g_object_unref(msg);
    if (rc == SL_ENOMEM) return sl_fail(call, SL_ENOMEM, "out of memory");
    return rc;
}

/* A mailbox: its messages become children, cut from its bytes; an element
 * per message lists them. */
static int parse_mbox(sl_call *call, sl_doc *doc, const char *data, size_t len) {
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer(data, len);
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MBOX);
    int rc = 0, n = 0;
    while (!rc && !g_mime_parser_eos(parser)) {
        GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
        if (!msg) break;
        gint64 begin = g_mime_parser_get_headers_begin(parser), end = g_mime_parser_tell(parser);
        n++;
        if (begin >= 0 && end > begin && (size_t)end <= len) {
            char name[64];
            snprintf(name, sizeof name, "message-%d.eml", n);
            rc = sl_doc_add_child(doc, name, "message/rfc822", data + begin, (size_t)(end - begin));
            if (rc >= 0) rc = 0;
        }
        const char *subject = g_mime_message_get_subject(msg);
        InternetAddressList *from = g_mime_message_get_from(msg);
        char *who = from ? internet_address_list_to_string(from, NULL, FALSE) : NULL;
        GDateTime *date = g_mime_message_get_date(msg);
        char *iso = date ? g_date_time_format_iso8601(date) : NULL;
        char line[1024];
        int m =
            snprintf(line, sizeof line, "%d. %s \xe2\x80\x94 %s%s%s", n, subject ? subject : "(no subject)",
                     who && *who ? who : "(no sender)", iso ? ", " : "", iso ? iso : "");
        if (!rc && add(doc, SL_EL_PARAGRAPH, line, m < (int)sizeof line ? (size_t)m : sizeof line - 1))
            rc = SL_ENOMEM;
        g_free(who);
        g_free(iso);
        g_object_unref(msg);
    }
    g_object_unref(parser);
    g_object_unref(stream);
    if (rc == SL_ENOMEM) return sl_fail(call, SL_ENOMEM, "out of memory");
    if (rc) return sl_fail(call, rc, "message %d could not be kept", n);
    if (!n) return sl_fail(call, SL_EBADINPUT, "not a mailbox: no \"From \" line starts a message");
    char count[32];
    snprintf(count, sizeof count, "%d", n);
    sl_doc_meta_set(doc, "messages", count);
    return 0;
}

static int email_parse(sl_call *call, sl_doc *doc) {
    const email_state *st = sl_call_state(call);
    size_t len;
    const char *data = sl_doc_data(doc, &len);
    if (!data || !len) return sl_fail(call, SL_EBADINPUT, "empty file");
    if (strcmp(sl_doc_media_type(doc), "application/mbox") == 0) return parse_mbox(call, doc, data, len);
    return parse_message(call, doc, st, data, len);
}

static const char *const media_types[] = {"message/rfc822", "application/mbox", NULL};

static const sl_plugin parse_email_plugin = {
    SL_PLUGIN_HEADER,
    .name = "parse-email",
    .version = "1.0.0",
    .summary = "e-mail (.eml) and mbox through GMime: headers as metadata, the body as paragraphs and "
               "quotes (or its HTML), attachments and a mailbox's messages as documents of their own",
    .role = SL_ROLE_PARSER,
    .bottleneck = SL_CPU,
    .options = options,
    .config_size = sizeof(email_config),
    .media_types = media_types,
    .init = email_init,
    .fini = email_fini,
    .parse = email_parse,
};

SL_PLUGIN_EXPORT(parse_email_plugin)
