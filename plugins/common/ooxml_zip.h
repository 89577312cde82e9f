/* ooxml_zip.h - a bounded reader for the zip containers of Office Open XML
 * (DOCX, PPTX, XLSX) and EPUB, over libzip, for parse-office and parse-epub.
 *
 * A zip is untrusted input: a few kilobytes can inflate to gigabytes (a zip
 * bomb), hold thousands of entries, or name entries like "../../etc/passwd".
 * The archive is opened from memory (the document's mapped bytes; nothing is
 * written anywhere) and every entry is inflated in slices while the bytes
 * that come out are counted, so the limits hold whatever the headers claim:
 *
 *   - max_entries: entries in the central directory;
 *   - max_entry_size: bytes one entry may inflate to;
 *   - max_total_size: bytes all entries read from one archive may inflate to;
 *   - max_ratio: inflated bytes per compressed byte of one entry (a little
 *     slack is allowed, so small well-compressed parts are not refused).
 *
 * Every error message names the entry it is about. Entry names are checked
 * when the archive opens: an absolute path, a ".." component, a backslash or
 * a drive letter fails the whole archive.
 *
 * Each plugin compiles this file into its own module (no shared library
 * between plugins: each is built the way a third party builds one).
 */
#ifndef SLUICE_PLUGINS_COMMON_OOXML_ZIP_H
#define SLUICE_PLUGINS_COMMON_OOXML_ZIP_H

#include <stddef.h>
#include <stdint.h>

typedef struct oz_limits {
    uint64_t max_entry_size;
    uint64_t max_total_size;
    uint64_t max_ratio;
    uint64_t max_entries;
} oz_limits;

typedef struct oz_zip oz_zip;

/* Error codes; the message goes to the caller's err buffer. */
#define OZ_EBAD (-1)      /* not a zip, damaged, or an unsafe entry name */
#define OZ_ELIMIT (-2)    /* a limit was crossed */
#define OZ_ENOMEM (-3)    /* out of memory */
#define OZ_ENOTFOUND (-4) /* no such entry */

/* Opens the zip in data[0..len) (not copied: it must outlive the archive).
 * NULL on failure, with *code set and the reason in err. */
oz_zip *oz_open(const void *data, size_t len, const oz_limits *limits, int *code, char *err, size_t errlen);
void oz_close(oz_zip *z);

/* Whether an entry of that name exists (names compare without case, as OPC
 * part names do). */
int oz_has(oz_zip *z, const char *name);

/* Inflates entry `name` into a malloc'd, NUL-terminated buffer (*out, its
 * length in *len; the caller frees it). 0, or an OZ_E* code with the reason,
 * naming the entry, in err. */
int oz_read(oz_zip *z, const char *name, char **out, size_t *len, char *err, size_t errlen);

/* Resolves a relationship target against the part that holds it: base
 * "word/document.xml" and target "media/a.png" give "word/media/a.png";
 * "../x" climbs; a target starting with "/" is from the root. Writes at most
 * outlen bytes; 0, or -1 when it does not fit or climbs above the root. */
int oz_resolve(const char *base, const char *target, char *out, size_t outlen);

#endif
