/* media.h - media types from file names and, where the name is missing or
 * lies, from the content.
 *
 * Routes pick their stages by media type. The type comes from the file's
 * extension (case-insensitive); unknown extensions are
 * application/octet-stream. The content is looked at only when needed:
 * bytes that fit what the name says (text without NULs under a text name,
 * a PDF's signature under .pdf) are believed at once; anything else is
 * asked of libmagic, on the first SL_MEDIA_HEAD bytes only. A zip's first
 * entries tell an Office document or an EPUB from a plain zip. A content
 * type is believed over the name's when it is specific (not text, not
 * octet-stream); a text type only when the name says nothing. libmagic's
 * handle is not thread-safe: one handle, behind a lock.
 */
#ifndef SL_MEDIA_H
#define SL_MEDIA_H

#include <stddef.h>

/* Bytes of a document's head that detection reads. */
#define SL_MEDIA_HEAD 8192

const char *sl_media_type_for_path(const char *path);

/* The type to believe for bytes `head` (their first len bytes, at most
 * SL_MEDIA_HEAD are read) named as `named`. When the content disagrees,
 * *content is the type it showed (else NULL); the answer is then the one
 * believed, `named` or *content. Strings are static. */
const char *sl_media_believe(const char *named, const void *head, size_t len, const char **content);

/* sl_media_believe on the first bytes of the file at path (read here). */
const char *sl_media_believe_file(const char *path, const char *named, const char **content);

/* The file name's extension with its dot (".pdf"), "" if none; points into path. */
const char *sl_media_ext(const char *path);

#endif
