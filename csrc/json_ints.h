/* Integer literals in JSON text that a double cannot hold exactly (beyond
 * 2^53), found outside strings, so they can be quoted before lua-cjson 2.1
 * (which reads every number as a double) sees them. Pure C: the fuzz target
 * links csrc/json_ints.c alone. */
#ifndef WXHW_JSON_INTS_H
#define WXHW_JSON_INTS_H

#include <stddef.h>

#pragma GCC visibility push(hidden)

/* Finds the next such literal at or after `from` (which must be 0 or the end
 * of a literal this returned). Returns 1 with *start, *len (sign included),
 * 0 when there is none, -1 when a string is left unterminated (the caller
 * leaves the text to the JSON decoder, which reports it). */
int wxhw_json_next_big_int(const char *s, size_t n, size_t from, size_t *start, size_t *len);

/* Whether the digits d[0..n) (no sign) are an integer beyond 2^53. */
int wxhw_json_beyond_2_53(const char *d, size_t n);

#pragma GCC visibility pop

#endif
