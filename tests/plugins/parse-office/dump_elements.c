/* dump_elements.c - a test tool: runs one parser plugin (by hand, through
 * harness.h, the way the core would) on one file and prints what it made as
 * JSON lines, for the format tests' Python checks:
 *
 *   {"meta": {...}, "pages": N}
 *   {"type": "heading", "level": 1, "page": 2, "attrs": {...}, "text": "..."}
 *   ...
 *
 * or, when the document fails, {"error": "the reason", "code": -2} and exit
 * status 3. Usage: dump_elements PLUGIN MEDIA_TYPE FILE [option=value ...]
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static void json_string(const char *s) {
    putchar('"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s PLUGIN MEDIA_TYPE FILE [option=value ...]\n", argv[0]);
        return 2;
    }
    harness h;
    int rc = harness_open(&h, argv[1], (const char *const *)(argc > 4 ? argv + 4 : NULL));
    if (rc) {
        printf("{\"init_error\": ");
        json_string(h.inst ? h.inst->errmsg : "cannot load the plugin");
        printf("}\n");
        harness_close(&h);
        return 4;
    }
    int fd = open(argv[3], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror(argv[3]);
        return 2;
    }
    size_t len = (size_t)st.st_size;
    const char *data = len ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0) : "";
    if (data == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    sl_doc *doc = harness_doc(argv[3], argv[2], data, len);
    sl_call call;
    sl_call_init(&call, h.inst, NULL);
    rc = h.desc->parse(&call, doc);
    int status = 0;
    if (rc) {
        printf("{\"error\": ");
        json_string(call.msg);
        printf(", \"code\": %d}\n", rc);
        status = 3;
    } else {
        printf("{\"meta\": {");
        for (size_t i = 0, n = sl_doc_meta_count(doc); i < n; i++) {
            const char *k, *v;
            sl_doc_meta_at(doc, i, &k, &v);
            printf("%s", i ? ", " : "");
            json_string(k);
            printf(": ");
            json_string(v);
        }
        printf("}, \"pages\": %u}\n", sl_doc_page_count(doc));
        static const char *const attrs[] = {"role", "sheet", "truncated", "lang", NULL};
        for (size_t i = 0, n = sl_doc_element_count(doc); i < n; i++) {
            printf("{\"type\": \"%s\", \"level\": %d, \"page\": %u, \"attrs\": {",
                   sl_elem_type_name(sl_element_type(doc, i)), sl_element_level(doc, i),
                   sl_element_page(doc, i));
            int na = 0;
            for (const char *const *a = attrs; *a; a++) {
                const char *v = sl_element_attr(doc, i, *a);
                if (!v) continue;
                printf("%s\"%s\": ", na++ ? ", " : "", *a);
                json_string(v);
            }
            printf("}, \"text\": ");
            json_string(sl_element_text(doc, i, NULL));
            printf("}\n");
        }
    }
    sl_doc_free(doc);
    if (len) munmap((void *)data, len);
    close(fd);
    harness_close(&h);
    return status;
}
