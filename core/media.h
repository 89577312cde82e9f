/* media.h - media types from file names.
 *
 * Routes pick their stages by media type. The type comes from the file's
 * extension (case-insensitive); a parser still checks that the bytes are
 * what the name claims (a binary file named .md fails in the parser, with
 * the reason). Unknown extensions are application/octet-stream.
 */
#ifndef SL_MEDIA_H
#define SL_MEDIA_H

const char *sl_media_type_for_path(const char *path);

#endif
