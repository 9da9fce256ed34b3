/* A flat JSON object (string keys; values that are strings, numbers, true,
 * false or null) read in one pass, for the decoder's fast path: WeChat's
 * pushes and most API answers are such objects, and building their table in
 * C skips lua-cjson's generic decoder and the big-integer pre-pass. Strict
 * RFC 8259 only: anything else (nesting, \u escapes, control bytes, more
 * than WXHW_FLAT_MAX members, non-JSON numbers cjson would still accept)
 * is declined, and the caller decodes the text the general way, so both
 * paths give the same value or the same error. Pure C (fuzz/json_flat.c). */
#ifndef WXHW_JSON_FLAT_H
#define WXHW_JSON_FLAT_H

#include <stddef.h>

#pragma GCC visibility push(hidden)

#define WXHW_FLAT_MAX 64

enum wxhw_flat_kind {
  WXHW_FLAT_STRING,     /* off/len: the bytes between the quotes */
  WXHW_FLAT_ESCAPED,    /* the same, with simple backslash escapes to undo */
  WXHW_FLAT_NUMBER,     /* a double (fraction, exponent or within 2^53) */
  WXHW_FLAT_BIG_INT,    /* an integer literal beyond 2^53: kept as its text */
  WXHW_FLAT_TRUE,
  WXHW_FLAT_FALSE,
  WXHW_FLAT_NULL
};

struct wxhw_flat_member {
  size_t key_off, key_len; /* no escapes in keys (else declined) */
  size_t off, len;         /* the value's bytes */
  enum wxhw_flat_kind kind;
};

/* Fills m[0..*count) in text order. Returns 1 when s is such an object, 0
 * when it is declined. `decimal_point` is the C library's current one:
 * numbers with a fraction are declined unless it is '.'. */
int wxhw_json_flat(const char *s, size_t n, char decimal_point, struct wxhw_flat_member *m, size_t *count);

/* Undoes the escapes of a WXHW_FLAT_ESCAPED value into out (at least len
 * bytes); returns the length written. */
size_t wxhw_json_flat_unescape(const char *s, size_t len, char *out);

#pragma GCC visibility pop

#endif
