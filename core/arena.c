/* arena.c - bump allocation for one document's lifetime (see arena.h).
 *
 * Blocks grow geometrically from 4 KiB up to 1 MiB; a request larger than a
 * block gets a block of its own, so a 50 MB line costs 50 MB, not 100. */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sl_arena_block {
    sl_arena_block *next;
    size_t size; /* usable bytes after the header */
    size_t off;
    _Alignas(16) unsigned char data[];
};

#define ARENA_MIN_BLOCK 4096u
#define ARENA_MAX_BLOCK (1u << 20)

void sl_arena_init(sl_arena *a) { memset(a, 0, sizeof *a); }

void *sl_arena_alloc_raw(sl_arena *a, size_t size) {
    size_t need = (size + 15u) & ~(size_t)15u;
    if (need < size) return NULL;
    sl_arena_block *b = a->head;
    if (!b || b->size - b->off < need) {
        size_t bs = b ? b->size * 2 : ARENA_MIN_BLOCK;
        if (bs > ARENA_MAX_BLOCK) bs = ARENA_MAX_BLOCK;
        if (bs < need) bs = need;
        if (bs > SIZE_MAX - sizeof(sl_arena_block)) return NULL;
        sl_arena_block *nb = malloc(sizeof(sl_arena_block) + bs);
        if (!nb) return NULL;
        nb->size = bs;
        nb->off = 0;
        /* A one-off huge block goes behind the current one so the current
         * block's free space is still used by later small requests. */
        if (b && bs == need && need > ARENA_MAX_BLOCK) {
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            a->head = nb;
        }
        a->reserved += bs;
        b = nb;
    }
    void *p = b->data + b->off;
    b->off += need;
    a->used += need;
    return p;
}

void *sl_arena_alloc(sl_arena *a, size_t size) {
    void *p = sl_arena_alloc_raw(a, size);
    if (p) memset(p, 0, size);
    return p;
}

char *sl_arena_strndup(sl_arena *a, const char *s, size_t len) {
    if (len == SIZE_MAX) return NULL;
    char *p = sl_arena_alloc_raw(a, len + 1);
    if (!p) return NULL;
    if (len) memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *sl_arena_strdup(sl_arena *a, const char *s) { return sl_arena_strndup(a, s, strlen(s)); }

void sl_arena_free(sl_arena *a) {
    sl_arena_block *b = a->head;
    while (b) {
        sl_arena_block *n = b->next;
        free(b);
        b = n;
    }
    sl_arena_init(a);
}
