/* sluice/doc.h - a document as plugins see it: bytes in, pages, elements and chunks out.
 *
 * A document is read once (mapped where possible) and hashed by the core.
 * Parsers add pages, elements (typed text blocks with page and position) and
 * metadata; chunkers turn elements into chunks; embedders fill vectors; sinks
 * read everything. Memory comes from the document's arena: whatever a
 * function returns lives until the document is done and is freed with it,
 * so plugins never free document data. Indexes are 0-based; pages and lines
 * are 1-based, with 0 meaning "unknown".
 *
 * A document is used by one stage at a time, except that page stages may run
 * on several pages of one document at once: the adding functions are safe
 * for that.
 *
 * Conventions the core, the chunker (chunk-text) and the sinks rely on:
 *
 *   Text is UTF-8. Element and chunk text, headings, summaries, attribute
 *   and metadata keys and values must be valid UTF-8 (NUL bytes allowed in
 *   element and chunk text, which have lengths). Anything else is refused
 *   with SL_EBADINPUT, and the core then fails the document with the place
 *   ("element 3 (paragraph): not valid UTF-8 at byte 17"), whatever the
 *   plugin answers. A parser decodes its format's charset itself.
 *
 *   Metadata keys with a meaning:
 *     "title"    the document's title: the sinks store it in its own column,
 *                `query` shows it, and summary prompts name it. Set it
 *                from the format's own title (<title>, docProps, a front
 *                matter `title:`), else leave it out.
 *     "format"   the source format when the media type does not say it.
 *   Any other key is stored as it is in the document's metadata JSON
 *   (author, date, language, ...: lower case, no spaces, by convention).
 *
 *   How chunk-text reads elements:
 *     - SL_EL_HEADING starts a section at its level (1..6, clamped); the
 *       heading path of a chunk is the text of the last heading of each
 *       level above it ("Install > From source").
 *     - SL_EL_TITLE counts as a level-1 heading. Emit a TITLE only when
 *       the format has a title separate from its headings: a TITLE next to
 *       an <h1> with the same words makes a heading with nothing under it.
 *     - Paragraphs, lists, tables, code, captions and quotes are the body;
 *       a chunk is cut between elements where it can, inside one only when
 *       it is longer than the chunk size. Tables: rows on their own lines,
 *       cells separated by " | ", the header row first. Lists: one item a
 *       line. Code: the text exactly, attr "lang" for the language.
 *     - An element's page (sl_elem_set_page) and line (sl_elem_set_source)
 *       become the position of the chunk it starts.
 *
 * Lifetimes: sl_doc_data's bytes and everything the sl_doc_* and
 * sl_element_* / sl_chunk_* getters return live until the document is done.
 * Across SL_PENDING (plugin.h) the document stays valid until the call is
 * answered with sl_call_done; other arguments follow plugin.h's rules.
 */
#ifndef SLUICE_DOC_H
#define SLUICE_DOC_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_doc sl_doc;
typedef struct sl_hits sl_hits;

/* A piece of text, not necessarily NUL-terminated. Frozen for ABI major 1. */
typedef struct sl_text {
    const char *ptr;
    size_t len;
} sl_text;

typedef enum sl_elem_type {
    SL_EL_TITLE = 1,
    SL_EL_HEADING = 2, /* level 1..6 */
    SL_EL_PARAGRAPH = 3,
    SL_EL_LIST = 4,  /* a whole list; items on their own lines */
    SL_EL_TABLE = 5, /* rows on their own lines, cells separated by " | "; attr "header" = "1":
                      * the first row is a header row (chunkers repeat it when they split) */
    SL_EL_CODE = 6,  /* attr "lang" may name the language */
    SL_EL_CAPTION = 7,
    SL_EL_QUOTE = 8,
    SL_EL_OTHER = 9
} sl_elem_type;

/* "heading", "paragraph", ... ; "unknown" for anything else. */
SL_EXPORT const char *sl_elem_type_name(sl_elem_type type);

/* --- what the core set --- */

/* The source as stored and shown: the path as given on the command line, or a URI. */
SL_EXPORT const char *sl_doc_uri(const sl_doc *doc);
/* Media type picked by the core, e.g. "text/markdown". */
SL_EXPORT const char *sl_doc_media_type(const sl_doc *doc);
/* The document's bytes (mapped read-only); valid until the document is done. */
SL_EXPORT const char *sl_doc_data(const sl_doc *doc, size_t *len);
/* Content hash (hex) and pipeline fingerprint (hex) of this document's route. */
SL_EXPORT const char *sl_doc_hash(const sl_doc *doc);
SL_EXPORT const char *sl_doc_fingerprint(const sl_doc *doc);
/* The run this document is processed in (sinks record it as "seen"). */
SL_EXPORT uint64_t sl_doc_run_id(const sl_doc *doc);
/* A document a queue node leased (ABI 1.5, `sluice run --queue`): 1 and its
 * job's id and fencing token, which the sink's store acks in its
 * transaction (plugin.h, queue_join); 0 for a document not from a queue
 * (a found-inside child included: its parent's store acks the job). */
SL_EXPORT int sl_doc_queue_job(const sl_doc *doc, int64_t *id, int64_t *token);
/* A document found inside a leased one (a child, at any depth): 1 and the
 * job and token its store must be fenced by, without acking it: the store
 * commits only while that job is still leased with that token (the
 * parent's store, after its children, acks it). 0 otherwise. A sink that
 * keeps the queue checks it as it does the ack, so that a stale node's late
 * store of a child is refused as its parent's would be. */
SL_EXPORT int sl_doc_queue_fence(const sl_doc *doc, int64_t *id, int64_t *token);

/* --- arena memory, freed with the document --- */
SL_EXPORT void *sl_doc_alloc(sl_doc *doc, size_t size);
SL_EXPORT char *sl_doc_strndup(sl_doc *doc, const char *s, size_t len);

/* --- metadata: string pairs; setting a key again replaces it --- */
SL_EXPORT int sl_doc_meta_set(sl_doc *doc, const char *key, const char *value);
SL_EXPORT const char *sl_doc_meta_get(const sl_doc *doc, const char *key); /* NULL if absent */
SL_EXPORT size_t sl_doc_meta_count(const sl_doc *doc);
SL_EXPORT int sl_doc_meta_at(const sl_doc *doc, size_t i, const char **key, const char **value);

/* --- pages --- */
SL_EXPORT int sl_doc_set_page_count(sl_doc *doc, uint32_t pages);
SL_EXPORT uint32_t sl_doc_page_count(const sl_doc *doc);

/* --- elements --- */

/* Copies the text; returns the new element's index, or a negative SL_E*. */
SL_EXPORT int sl_doc_add_element(sl_doc *doc, sl_elem_type type, const char *text, size_t len);
SL_EXPORT int sl_elem_set_level(sl_doc *doc, size_t i, int level);
SL_EXPORT int sl_elem_set_page(sl_doc *doc, size_t i, uint32_t page);
/* Byte offset in the source and 1-based line, when the format has them. */
SL_EXPORT int sl_elem_set_source(sl_doc *doc, size_t i, uint64_t offset, uint32_t line);
SL_EXPORT int sl_elem_set_bbox(sl_doc *doc, size_t i, float x0, float y0, float x1, float y1);
SL_EXPORT int sl_elem_set_confidence(sl_doc *doc, size_t i, float confidence); /* 0..100 */
SL_EXPORT int sl_elem_set_attr(sl_doc *doc, size_t i, const char *key, const char *value);

SL_EXPORT size_t sl_doc_element_count(const sl_doc *doc);
SL_EXPORT sl_elem_type sl_element_type(const sl_doc *doc, size_t i);
SL_EXPORT const char *sl_element_text(const sl_doc *doc, size_t i, size_t *len); /* NUL-terminated */
SL_EXPORT int sl_element_level(const sl_doc *doc, size_t i);
SL_EXPORT uint32_t sl_element_page(const sl_doc *doc, size_t i);
SL_EXPORT uint32_t sl_element_line(const sl_doc *doc, size_t i);
SL_EXPORT uint64_t sl_element_offset(const sl_doc *doc, size_t i);
SL_EXPORT const char *sl_element_attr(const sl_doc *doc, size_t i, const char *key); /* NULL if absent */
/* Confidence 0..100, or a negative number when unknown. */
SL_EXPORT float sl_element_confidence(const sl_doc *doc, size_t i);
/* 1 and the box if the element has one, else 0. */
SL_EXPORT int sl_element_bbox(const sl_doc *doc, size_t i, float box[4]);

/* --- chunks --- */

/* Copies the text; returns the new chunk's index, or a negative SL_E*. */
SL_EXPORT int sl_doc_add_chunk(sl_doc *doc, const char *text, size_t len);
/* Heading path, e.g. "Install > From source". */
SL_EXPORT int sl_chunk_set_heading(sl_doc *doc, size_t i, const char *heading_path);
/* Where the chunk starts: page and line (0 = unknown). */
SL_EXPORT int sl_chunk_set_position(sl_doc *doc, size_t i, uint32_t page, uint32_t line);
SL_EXPORT int sl_chunk_set_summary(sl_doc *doc, size_t i, const char *summary);

SL_EXPORT size_t sl_doc_chunk_count(const sl_doc *doc);
SL_EXPORT const char *sl_chunk_text(const sl_doc *doc, size_t i, size_t *len); /* NUL-terminated */
SL_EXPORT const char *sl_chunk_heading(const sl_doc *doc, size_t i);           /* "" if none */
SL_EXPORT uint32_t sl_chunk_page(const sl_doc *doc, size_t i);
SL_EXPORT uint32_t sl_chunk_line(const sl_doc *doc, size_t i);
SL_EXPORT const char *sl_chunk_summary(const sl_doc *doc, size_t i); /* NULL if none */
/* The chunk's vector (NULL before embedding) and its dimension. */
SL_EXPORT const float *sl_chunk_vector(const sl_doc *doc, size_t i, uint32_t *dim);

/* --- page images (ABI 1.1): rendered pages and scanned images --- */

/* Sets page `page`'s image (copied): 8-bit gray (channels 1), RGB (3) or
 * RGBA (4), `stride` bytes per row, rendered at `dpi` (0: unknown). Page
 * must be within sl_doc_page_count. Safe from parallel page stages. */
SL_EXPORT int sl_doc_set_page_image(sl_doc *doc, uint32_t page, uint32_t width, uint32_t height,
                                    uint32_t channels, size_t stride, const unsigned char *pixels, float dpi);
/* The page's image, or NULL when it has none; the out-parameters may be NULL. */
SL_EXPORT const unsigned char *sl_doc_page_image(const sl_doc *doc, uint32_t page, uint32_t *width,
                                                 uint32_t *height, uint32_t *channels, size_t *stride,
                                                 float *dpi);
/* Frees a page's image once nothing needs it (after OCR, say). */
SL_EXPORT int sl_doc_drop_page_image(sl_doc *doc, uint32_t page);
/* Characters of text in the elements of `page`: render stages use it to
 * decide whether a page has a real text layer. */
SL_EXPORT size_t sl_doc_page_text_chars(const sl_doc *doc, uint32_t page);

/* --- layout regions (ABI 1.1): what a layout model found on a page --- */

/* Adds a region: a labelled box ("text", "table", "figure", ...) in page
 * coordinates with the model's score (0..1). Returns its index. */
SL_EXPORT int sl_doc_add_region(sl_doc *doc, uint32_t page, const char *label, float score, float x0,
                                float y0, float x1, float y1);
SL_EXPORT size_t sl_doc_region_count(const sl_doc *doc);
/* Region i: page, label, score and box; 0, or SL_EINVAL when out of range. */
SL_EXPORT int sl_doc_region(const sl_doc *doc, size_t i, uint32_t *page, const char **label, float *score,
                            float box[4]);

/* --- child documents (ABI 1.3): documents found inside a document --- */

/* Hands the core a document found inside this one (an email's attachment,
 * an archive's member), from a parser's parse callback. The bytes are
 * copied; `name` is the child's name inside its parent (a file name: the
 * core makes it safe and unique, and the child's uri is PARENT_URI#NAME);
 * `media_type` NULL lets the core pick it from the name and the content.
 * Once the parent's parse succeeds, each child becomes a document of its
 * own, routed by its media type through its own route, stored with the
 * metadata key "parent" naming the parent's uri; the parent is stored
 * after its children ended. Returns the child's index, SL_EINVAL for a
 * missing name or bytes, SL_ENOMEM, or SL_EBADINPUT once the document has
 * more children or child bytes than [sluice] max_children and
 * max_child_bytes allow: the document then fails with that reason (never
 * stored with part of its children), whatever the parser answers. */
SL_EXPORT int sl_doc_add_child(sl_doc *doc, const char *name, const char *media_type, const void *data,
                               size_t len);
/* Children added so far. */
SL_EXPORT size_t sl_doc_child_count(const sl_doc *doc);
/* --- chunk attributes (ABI 1.3): what a chunk is made of --- */

/* Sets a string attribute of chunk i (both copied); setting a key again
 * replaces it. Sinks store every attribute and queries answer them. Keys the
 * project's chunker sets:
 *   "kinds"  the element types in the chunk, in order of first appearance,
 *            comma-separated, as sl_elem_type_name names them
 *            ("heading,paragraph,table")
 *   "region" the layout region labels (sl_doc_region) its elements lie in,
 *            comma-separated, in order ("table", "figure,caption"); absent
 *            when the page had no regions
 *   "pages"  "3-4" when the chunk runs over more than one page (its start
 *            page is sl_chunk_page) */
SL_EXPORT int sl_chunk_set_attr(sl_doc *doc, size_t i, const char *key, const char *value);
/* The attribute's value, or NULL when chunk i does not have it. */
SL_EXPORT const char *sl_chunk_attr(const sl_doc *doc, size_t i, const char *key);
/* Chunk i's attributes, in the order they were first set: count, and the
 * j-th (0, or SL_EINVAL out of range). */
SL_EXPORT size_t sl_chunk_attr_count(const sl_doc *doc, size_t i);
SL_EXPORT int sl_chunk_attr_at(const sl_doc *doc, size_t i, size_t j, const char **key, const char **value);

/* --- query results (sinks) --- */

/* Adds one hit; strings are copied. score: higher is nearer (a vector query:
 * the cosine similarity; a keyword query: the sink's text relevance). */
SL_EXPORT int sl_hits_add(sl_hits *hits, double score, const char *uri, uint32_t chunk, uint32_t page,
                          uint32_t line, const char *heading, const char *text);
/* Sets an attribute (a chunk attribute as stored: "kinds", "region", ...)
 * of the hit added last; call it right after sl_hits_add. Strings are
 * copied. SL_EINVAL when no hit was just added. (ABI 1.3) */
SL_EXPORT int sl_hits_set_attr(sl_hits *hits, const char *key, const char *value);

#ifdef __cplusplus
}
#endif
#endif
