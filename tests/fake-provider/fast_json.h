/* fast_json.h - the fake provider's request parser: the same jansson values
 * json_loadb(buf, len, 0, ...) would make, made in one pass over the bytes.
 *
 * Under bench/scale.sh the fake parses about 1.5 GB of request JSON for
 * 10,000 documents, and jansson's lexer (a function call per character)
 * was nearly half of the fake's CPU, taken from the sluice it serves on
 * the same cores. This parser accepts what json_loadb accepts without
 * flags and nothing else: it gives up (NULL) on anything it does not
 * handle the same way (invalid UTF-8, a \u0000, a lone surrogate, a
 * number out of range, nesting deeper than FJ_MAX_DEPTH, trailing bytes),
 * and the caller then asks json_loadb, whose error message the client
 * sees. tests/fake-provider/test_fast_json.c holds the two to the same
 * answers. */
#ifndef FAKE_FAST_JSON_H
#define FAKE_FAST_JSON_H

#include <stddef.h>

#include <jansson.h>

#define FJ_MAX_DEPTH 256

/* A new reference to the object or array in buf[0..len), or NULL when the
 * bytes are not JSON this parser takes (ask json_loadb then) or memory ran
 * out. */
json_t *fj_loadb(const char *buf, size_t len);

#endif
