/* walk.h - finding the documents under the paths given to `sluice run`.
 *
 * Depth-first, directories listed and sorted one at a time, so memory grows
 * with depth, not with the corpus, and runs are reproducible. A PATH that is
 * a file is always a candidate; inside directories, files must match an
 * include pattern and no exclude pattern (fnmatch on the base name; excludes
 * also prune directories). Symbolic links are followed; a link that cannot
 * be resolved (a loop, a dangling target) is yielded as a candidate with an
 * error, so it is reported as a failed document instead of vanishing, and a
 * directory link back to one of its own ancestors is not entered twice.
 *
 * Remote roots (source.h): an http(s):// URL is one named candidate (size
 * unknown, 0); an s3://BUCKET/PREFIX is listed page by page as the walk
 * goes, like a folder (the key's base name must match include, the object
 * PREFIX itself is named); each object is yielded as s3://BUCKET/KEY with
 * its size. Listing blocks the caller for one page of 1000 keys at a time.
 */
#ifndef SL_WALK_H
#define SL_WALK_H

#include <stddef.h>
#include <stdint.h>

typedef struct sl_walk sl_walk;

typedef struct sl_walk_entry {
    const char *path;  /* valid until the next call */
    const char *error; /* NULL, or why this candidate cannot be read */
    uint64_t size;     /* st_size when known */
    int named;         /* a PATH given on its own, not found in a folder */
    int outside;       /* found in a folder but outside the include patterns (sl_walk_report_outside) */
} sl_walk_entry;

/* Patterns are space-separated lists ("*.md *.txt"). */
int sl_walk_new(const char *const *roots, size_t nroots, const char *include, const char *exclude,
                sl_walk **out);
/* From now on, files in folders that match no include pattern are yielded
 * too, with `outside` set, so a run can count what it left out. */
void sl_walk_report_outside(sl_walk *w);
/* 1 and *e filled for the next candidate, 0 at the end; 2 (only with a
 * notifier set) when the next candidate waits on an s3:// listing's page
 * still being fetched: fn(arg) is called, on another thread, once it is in,
 * and the walk goes on from where it was. Without a notifier the walk waits
 * for the page. A notifier set to NULL is no longer running when this
 * returns. */
int sl_walk_next(sl_walk *w, sl_walk_entry *e);
void sl_walk_set_notify(sl_walk *w, void (*fn)(void *arg), void *arg);
void sl_walk_free(sl_walk *w);

/* Whether a base name matches one of a space-separated list of patterns,
 * as the walk matches include and exclude (`sluice serve` filters its
 * events with it). */
int sl_walk_name_matches(const char *patterns, const char *name);

/* Counts the candidates a fresh walk would yield (for the progress line),
 * except under s3:// roots, which are not listed for it (a listing is a
 * request a thousand keys, and the run lists them anyway): *uncounted says
 * whether there were any. */
uint64_t sl_walk_count(const char *const *roots, size_t nroots, const char *include, const char *exclude,
                       int *uncounted);
/* Candidates this walk has found under s3:// roots so far. */
uint64_t sl_walk_s3_listed(const sl_walk *w);

#endif
