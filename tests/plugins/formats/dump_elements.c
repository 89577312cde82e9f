/* dump_elements.c - runs one parser plugin on one file and prints what it
 * made, for the shell tests and benchmarks of parse-html, parse-csv and
 * parse-json:
 *
 *   dump_elements PLUGIN MEDIA_TYPE FILE [OPTION=VALUE]...
 *
 * prints one JSON object a line: first {"meta": {...}}, then one
 * {"type", "level", "line", "offset", "lang", "text"} per element. A
 * document the plugin refuses prints {"error": CODE, "reason": "..."} and
 * exits 3; a plugin that fails to load or init exits 2.
 *
 *   dump_elements --text PLUGIN MEDIA_TYPE FILE...
 *
 * prints only the elements' text, blank-line separated (one file after the
 * other), and on stderr one line per refused file: "FAIL file: reason".
 * The plugin is loaded and run through its descriptor (harness.h), as the
 * core would.
 */
#include <jansson.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "../parse-markdown/harness.h"

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

static int run_one(harness *h, const char *mt, const char *path, bool text_only) {
    size_t len = 0;
    char *data = read_file(path, &len);
    if (!data) {
        fprintf(stderr, "cannot read %s\n", path);
        return 2;
    }
    sl_doc *doc = harness_doc(path, mt, data, len);
    sl_call call;
    sl_call_init(&call, h->inst, NULL);
    int rc = h->desc->parse(&call, doc);
    int status = 0;
    if (rc) {
        if (text_only) {
            fprintf(stderr, "FAIL %s: %s\n", path, call.msg);
        } else {
            json_t *e = json_pack("{s:i,s:s}", "error", rc, "reason", call.msg);
            char *s = json_dumps(e, JSON_COMPACT);
            puts(s);
            free(s);
            json_decref(e);
        }
        status = 3;
    } else if (text_only) {
        for (size_t i = 0; i < sl_doc_element_count(doc); i++)
            printf("%s\n\n", sl_element_text(doc, i, NULL));
    } else {
        json_t *meta = json_object();
        for (size_t i = 0; i < sl_doc_meta_count(doc); i++) {
            const char *k, *v;
            if (sl_doc_meta_at(doc, i, &k, &v) == 0) json_object_set_new(meta, k, json_string(v));
        }
        json_t *m = json_pack("{s:o}", "meta", meta);
        char *s = json_dumps(m, JSON_COMPACT);
        puts(s);
        free(s);
        json_decref(m);
        for (size_t i = 0; i < sl_doc_element_count(doc); i++) {
            const char *lang = sl_element_attr(doc, i, "lang");
            json_t *e = json_pack(
                "{s:s,s:i,s:i,s:I,s:s?,s:s}", "type", sl_elem_type_name(sl_element_type(doc, i)), "level",
                sl_element_level(doc, i), "line", (int)sl_element_line(doc, i), "offset",
                (json_int_t)sl_element_offset(doc, i), "lang", lang, "text", sl_element_text(doc, i, NULL));
            s = json_dumps(e, JSON_COMPACT);
            puts(s ? s : "{\"error\": 0, \"reason\": \"element text is not UTF-8\"}");
            if (!s) status = 4;
            free(s);
            json_decref(e);
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
        return 2;
    }
    const char *plugin = argv[a], *mt = argv[a + 1];
    harness h;
    const char *const *overrides = text_only ? NULL : (const char *const *)argv + a + 3;
    if (harness_open(&h, plugin, overrides)) {
        fprintf(stderr, "cannot load or init %s: %s\n", plugin, h.inst ? h.inst->errmsg : "");
        harness_close(&h);
        return 2;
    }
    int status = 0;
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
