/* arena.h - bump allocation for one document's lifetime.
 *
 * Everything a document gathers (elements, chunks, vectors, metadata) is
 * allocated here and freed at once when the document is done, so stages never
 * free piecemeal and a failed document cannot leak. Not thread-safe: the
 * document serialises access.
 */
#ifndef SL_ARENA_H
#define SL_ARENA_H

#include <stddef.h>

typedef struct sl_arena_block sl_arena_block;
typedef struct sl_arena {
    sl_arena_block *head;
    size_t used;     /* bytes handed out */
    size_t reserved; /* bytes obtained from malloc */
} sl_arena;

void sl_arena_init(sl_arena *a);
/* 16-byte aligned; NULL on out of memory. Zeroed. */
void *sl_arena_alloc(sl_arena *a, size_t size);
/* The same, not zeroed: for bytes the caller writes at once (a copy).
 * Zeroing them first cost about 1% of a run's CPU (perf, bench/scale.sh):
 * it is also where a fresh block's pages are first touched. */
void *sl_arena_alloc_raw(sl_arena *a, size_t size);
char *sl_arena_strndup(sl_arena *a, const char *s, size_t len);
char *sl_arena_strdup(sl_arena *a, const char *s);
void sl_arena_free(sl_arena *a);

#endif
