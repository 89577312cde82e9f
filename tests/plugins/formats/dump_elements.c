/* dump_elements.c - a test and bench tool: runs one parser plugin by hand
 * (loaded and run through its descriptor, harness.h, as the core would) on
 * files and prints what it made. The format tests' shell and Python checks
 * read it (parse-html, parse-csv, parse-json, parse-office, parse-epub):
 *
 *   dump_elements PLUGIN MEDIA_TYPE FILE [OPTION=VALUE]...
 *
 * prints one JSON object a line: first {"meta": {...}, "pages": N}, then one
 * {"type", "level", "line", "offset", "page", "lang", "attrs", "text"} per
 * element ("lang" only when set; "attrs" holds role, sheet, truncated, note and
 * lang where set). A document the plugin refuses prints {"error": "reason",
 * "code": CODE} and exits 3; options init refuses print {"init_error":
 * "reason"} and exit 4; element text that is not UTF-8 exits 5.
 *
 *   dump_elements --text PLUGIN MEDIA_TYPE FILE...
 *
 * prints only the elements' text, blank-line separated (one file after the
 * other), and on stderr one line per refused file: "FAIL file: reason".
 */
#include <fcntl.h>
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../parse-markdown/harness.h"

enum { DUMP_OK = 0, DUMP_USAGE = 2, DUMP_REFUSED = 3, DUMP_INIT = 4, DUMP_NOT_UTF8 = 5 };

static char *read_file(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return NULL;
    struct stat sb;
    char *p = NULL;
    if (fstat(fd, &sb) == 0) {
        p = malloc((size_t)sb.st_size + 1);
        size_t got = 0;
        while (p && got < (size_t)sb.st_size) {
            ssize_t r = read(fd, p + got, (size_t)sb.st_size - got);
            if (r <= 0) break;
            got += (size_t)r;
        }
        *len = got;
    }
    close(fd);
    return p;
}

/* Prints o as one line and drops it; DUMP_NOT_UTF8 when jansson refuses it. */
static int put_line(json_t *o) {
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) {
        puts("{\"error\": \"element text is not UTF-8\", \"code\": 0}");
        return DUMP_NOT_UTF8;
    }
    puts(s);
    free(s);
    return DUMP_OK;
}

static json_t *element_json(const sl_doc *doc, size_t i) {
    static const char *const names[] = {"role", "sheet", "truncated", "lang", "note", NULL};
    json_t *attrs = json_object();
    for (const char *const *a = names; *a; a++) {
        const char *v = sl_element_attr(doc, i, *a);
        if (v) json_object_set_new(attrs, *a, json_string(v));
    }
    const char *lang = sl_element_attr(doc, i, "lang");
    return json_pack("{s:s,s:i,s:i,s:I,s:i,s:s?,s:o,s:s}", "type", sl_elem_type_name(sl_element_type(doc, i)),
                     "level", sl_element_level(doc, i), "line", (int)sl_element_line(doc, i), "offset",
                     (json_int_t)sl_element_offset(doc, i), "page", (int)sl_element_page(doc, i), "lang",
                     lang, "attrs", attrs, "text", sl_element_text(doc, i, NULL));
}

static int run_one(harness *h, const char *mt, const char *path, bool text_only) {
    size_t len = 0;
    char *data = read_file(path, &len);
    if (!data) {
        fprintf(stderr, "cannot read %s\n", path);
        return DUMP_USAGE;
    }
    sl_doc *doc = harness_doc(path, mt, data, len);
    sl_call call;
    sl_call_init(&call, h->inst, NULL);
    int rc = h->desc->parse(&call, doc);
    int status = DUMP_OK;
    if (rc) {
        if (text_only)
            fprintf(stderr, "FAIL %s: %s\n", path, call.msg);
        else
            put_line(json_pack("{s:s,s:i}", "error", call.msg, "code", rc));
        status = DUMP_REFUSED;
    } else if (text_only) {
        for (size_t i = 0; i < sl_doc_element_count(doc); i++)
            printf("%s\n\n", sl_element_text(doc, i, NULL));
    } else {
        json_t *meta = json_object();
        for (size_t i = 0; i < sl_doc_meta_count(doc); i++) {
            const char *k, *v;
            if (sl_doc_meta_at(doc, i, &k, &v) == 0) json_object_set_new(meta, k, json_string(v));
        }
        status = put_line(json_pack("{s:o,s:i}", "meta", meta, "pages", (int)sl_doc_page_count(doc)));
        for (size_t i = 0; i < sl_doc_element_count(doc); i++) {
            int r = put_line(element_json(doc, i));
            if (r) status = r;
        }
    }
    sl_doc_free(doc);
    free(data);
    return status;
}

int main(int argc, char **argv) {
    bool text_only = argc > 1 && strcmp(argv[1], "--text") == 0;
    int a = text_only ? 2 : 1;
    if (argc - a < 3) {
        fprintf(stderr, "usage: dump_elements [--text] PLUGIN MEDIA_TYPE FILE [OPTION=VALUE]...\n");
        return DUMP_USAGE;
    }
    const char *plugin = argv[a], *mt = argv[a + 1];
    harness h;
    const char *const *overrides = text_only ? NULL : (const char *const *)argv + a + 3;
    if (harness_open(&h, plugin, overrides)) {
        const char *why = h.inst ? h.inst->errmsg : "cannot load the plugin";
        fprintf(stderr, "cannot load or init %s: %s\n", plugin, why);
        if (!text_only) put_line(json_pack("{s:s}", "init_error", why));
        harness_close(&h);
        return DUMP_INIT;
    }
    int status = DUMP_OK;
    if (text_only) {
        for (int i = a + 2; i < argc; i++) {
            int rc = run_one(&h, mt, argv[i], true);
            if (rc > status) status = rc;
        }
    } else {
        status = run_one(&h, mt, argv[a + 2], false);
    }
    harness_close(&h);
    return status;
}
