/* media.c - extension to media type (see media.h). */
#include "media.h"

#include <string.h>
#include <strings.h>

static const struct {
    const char *ext;
    const char *type;
} table[] = {
    {"md", "text/markdown"},
    {"markdown", "text/markdown"},
    {"mdown", "text/markdown"},
    {"txt", "text/plain"},
    {"text", "text/plain"},
    {"csv", "text/csv"},
    {"html", "text/html"},
    {"htm", "text/html"},
    {"pdf", "application/pdf"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"json", "application/json"},
    {"jsonl", "application/x-ndjson"},
    {"ndjson", "application/x-ndjson"},
    {"tsv", "text/tab-separated-values"},
    {"xhtml", "application/xhtml+xml"},
};

/* Zip packages: Office Open XML (ECMA-376) and EPUB, as IANA registers them. */
static const struct {
    const char *ext;
    const char *type;
} packages[] = {
    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
    {"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
    {"epub", "application/epub+zip"},
};

const char *sl_media_type_for_path(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base) return "application/octet-stream";
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcasecmp(dot + 1, table[i].ext) == 0) return table[i].type;
    for (size_t i = 0; i < sizeof packages / sizeof packages[0]; i++)
        if (strcasecmp(dot + 1, packages[i].ext) == 0) return packages[i].type;
    return "application/octet-stream";
}
